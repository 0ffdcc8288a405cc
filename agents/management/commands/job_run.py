import json
import sys
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils.text import slugify

from agents.training.jobs import JobError, job_create, job_enqueue, job_run
from agents.training.merge import MergeError
from agents.training.merge_job import merge_config_check
from agents.training.models import Job, ModelArtifact
from agents.training.sft import DEFAULTS


class Command(BaseCommand):
    help = (
        "Run a GPU job: `job_run merge CONFIG.yml --name OUT` (model paths in the YAML may name "
        "artifacts) or `job_run sft --base NAME --dataset DIR --name OUT [--steps N] [--lora-r R]`. "
        "--wait: on the gpu queue, waiting for a worker; --here: in this process. Last line: "
        '{"job", "status", "artifact", "metrics"}.'
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("kind", choices=["merge", "sft"])
        parser.add_argument("config", nargs="?", help="merge: the mergekit YAML file")
        parser.add_argument("--name", required=True, help="name of the artifact to make")
        parser.add_argument("--base", help="sft: the base artifact")
        parser.add_argument(
            "--dataset", help="sft: a directory written by export_dataset --format sft"
        )
        parser.add_argument("--steps", type=int, default=DEFAULTS["steps"])
        parser.add_argument("--lora-r", type=int, default=DEFAULTS["lora_r"])
        parser.add_argument("--learning-rate", type=float, default=DEFAULTS["learning_rate"])
        parser.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"])
        parser.add_argument("--max-length", type=int, default=DEFAULTS["max_length"])
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--resume-from", type=int, help="sft: id of a cancelled job to resume")
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument("--wait", action="store_true")
        mode.add_argument("--here", action="store_true")
        parser.add_argument("--timeout", type=float, default=3600)

    def _config(self, options) -> dict:
        if options["kind"] == "merge":
            if not options["config"]:
                raise CommandError("job_run merge needs the merge config file")
            try:
                text = Path(options["config"]).read_text()
            except OSError as exc:
                raise CommandError(f"cannot read {options['config']}: {exc.strerror}") from exc
            try:
                merge_config_check(text)  # every problem reported before a job exists
            except (JobError, MergeError) as exc:
                raise CommandError(str(exc)) from exc
            return {"yaml": text, "seed": options["seed"]}
        if not options["base"] or not options["dataset"]:
            raise CommandError("job_run sft needs --base and --dataset")
        if not ModelArtifact.objects.filter(name=options["base"]).exists():
            raise CommandError(f"no artifact named {options['base']!r} (add one with artifact_add)")
        if not Path(options["dataset"]).is_dir():
            raise CommandError(f"{options['dataset']} is not a directory")
        config = {
            "base": options["base"],
            "dataset": str(Path(options["dataset"]).resolve()),
            "steps": options["steps"],
            "lora_r": options["lora_r"],
            "learning_rate": options["learning_rate"],
            "batch_size": options["batch_size"],
            "max_length": options["max_length"],
            "seed": options["seed"],
        }
        if options["resume_from"]:
            config["resume_from"] = options["resume_from"]
        return config

    def _show(self, job: Job) -> None:
        bar = "#" * int(30 * job.progress)
        self.stderr.write(f"\r[{bar:<30}] {job.progress:4.0%} {job.message[:60]:<60}", ending="")
        sys.stderr.flush()

    def handle(self, *args, **options) -> None:
        if slugify(options["name"]) != options["name"]:
            raise CommandError(f"--name must be a slug, e.g. {slugify(options['name'])!r}")
        try:
            job = job_create(
                kind=options["kind"], name=options["name"], config=self._config(options)
            )
        except JobError as exc:
            raise CommandError(str(exc)) from exc
        self.stderr.write(f"job {job.id}: {job}")
        if options["here"]:
            job_run(job_id=job.id)
        else:
            job_enqueue(job=job)
            if options["wait"]:
                deadline = time.monotonic() + options["timeout"]
                while time.monotonic() < deadline:
                    job.refresh_from_db()
                    self._show(job)
                    if job.is_finished:
                        break
                    time.sleep(0.5)
                else:
                    raise CommandError(
                        f"job {job.id} did not finish within {options['timeout']:g} s (is a worker on the gpu queue running?)"
                    )
        self.stderr.write("")
        job.refresh_from_db()
        metrics = {k: v for k, v in job.metrics.items() if not k.endswith("_series")}
        self.stdout.write(
            json.dumps(
                {
                    "job": job.id,
                    "status": job.status,
                    "artifact": job.output.name if job.output else None,
                    "metrics": metrics,
                    **({"error": job.error} if job.error else {}),
                }
            )
        )
        if job.status == Job.Status.FAILED:
            raise CommandError(job.error)
