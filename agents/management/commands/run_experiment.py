import json
import sys
import time

from django.core.management.base import BaseCommand, CommandError

from agents.evals.experiments import (
    ExperimentError,
    experiment_create,
    experiment_run_here,
    experiment_start,
)
from agents.evals.models import Dataset, Experiment, ExperimentResult
from agents.models import Agent, ModelEndpoint


def _bar(done: int, total: int, width: int = 30) -> str:
    filled = int(width * done / total) if total else width
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total}"


class Command(BaseCommand):
    help = (
        "Run an agent on every item of a dataset and score it. --wait fans the items out over "
        "the workers and waits; --here runs them one after another in this process (each still "
        'a normal trace). The last line printed is {"experiment", "items", "done", "scores"}.'
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--agent", required=True, help="the agent's slug")
        parser.add_argument("--dataset", required=True, help="the dataset's name")
        parser.add_argument("--limit", type=int, help="only the first N items")
        parser.add_argument("--concurrency", type=int, default=4, help="items at once (--wait)")
        parser.add_argument(
            "--judge", help="a model endpoint that grades each answer (LLM-as-judge)"
        )
        parser.add_argument(
            "--rubric", default="", help="the judge's rubric (default: a generic one)"
        )
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument("--wait", action="store_true", help="run on the workers and wait")
        mode.add_argument("--here", action="store_true", help="run in this process, no worker")
        parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait (--wait)")

    def _progress(self, experiment: Experiment) -> None:
        total = experiment.results.count()
        done = experiment.results.filter(
            status__in=[ExperimentResult.Status.SCORED, ExperimentResult.Status.ERROR]
        ).count()
        valid = experiment.results.filter(valid=True).count()
        accuracy = f" accuracy {valid / done:.3f}" if done else ""
        self.stderr.write(f"\r{_bar(done, total)}{accuracy}", ending="")
        sys.stderr.flush()

    def handle(self, *args, **options) -> None:
        agent = Agent.objects.filter(slug=options["agent"]).first()
        if agent is None:
            slugs = ", ".join(Agent.objects.values_list("slug", flat=True)) or "none"
            raise CommandError(f"no agent {options['agent']!r}; agents: {slugs}")
        dataset = Dataset.objects.filter(name=options["dataset"]).first()
        if dataset is None:
            names = ", ".join(Dataset.objects.values_list("name", flat=True)) or "none"
            raise CommandError(f"no dataset {options['dataset']!r}; datasets: {names}")
        judge = None
        if options["judge"]:
            judge = ModelEndpoint.objects.filter(name=options["judge"]).first()
            if judge is None:
                raise CommandError(f"no model endpoint {options['judge']!r} for --judge")
        try:
            experiment = experiment_create(
                agent=agent,
                dataset=dataset,
                limit=options["limit"],
                concurrency=options["concurrency"],
                judge=judge,
                rubric=options["rubric"],
            )
        except ExperimentError as exc:
            raise CommandError(str(exc)) from exc
        self.stderr.write(f"experiment {experiment.id}: {experiment.name}")
        if options["here"]:
            experiment = experiment_run_here(experiment=experiment, progress=self._progress)
        else:
            experiment_start(experiment=experiment)
            if options["wait"]:
                deadline = time.monotonic() + options["timeout"]
                while time.monotonic() < deadline:
                    experiment.refresh_from_db()
                    self._progress(experiment)
                    if experiment.is_finished:
                        break
                    time.sleep(0.5)
                else:
                    self.stderr.write("")
                    raise CommandError(
                        f"experiment {experiment.id} did not finish within {options['timeout']:g} s "
                        "(is a worker running on the agents queue?)"
                    )
        self.stderr.write("")
        experiment.refresh_from_db()
        results = experiment.results
        done = results.filter(
            status__in=[ExperimentResult.Status.SCORED, ExperimentResult.Status.ERROR]
        ).count()
        self.stdout.write(
            json.dumps(
                {
                    "experiment": experiment.id,
                    "items": results.count(),
                    "done": done,
                    "status": experiment.status,
                    "scores": experiment.scores,
                }
            )
        )
