import json
import re
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from agents.models import Agent
from agents.services import RunError, agent_run_start
from traces.models import Trace
from traces.selectors import steps_after


class Command(BaseCommand):
    help = "Start an agent run on the workers; print the trace id and URL (--wait: print steps as they come)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--agent", required=True, help="the agent's slug")
        parser.add_argument("--input", required=True, help="what the agent should do")
        parser.add_argument(
            "--wait", action="store_true", help="print each step as it is saved, until the end"
        )
        parser.add_argument(
            "--timeout", type=float, default=600, help="seconds to wait with --wait"
        )

    def handle(self, *args, **options) -> None:
        if not re.fullmatch(r"[-\w]{1,100}", options["agent"]):
            raise CommandError(f"{options['agent'][:100]!r} is not an agent's slug")
        agent = Agent.objects.filter(slug=options["agent"]).first()
        if agent is None:
            slugs = ", ".join(Agent.objects.values_list("slug", flat=True)) or "none"
            raise CommandError(f"no agent {options['agent']!r}; agents: {slugs}")
        try:
            trace = agent_run_start(agent=agent, input=options["input"])
        except RunError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"trace {trace.id}")
        self.stdout.write(f"{settings.SITE_URL}{trace.get_absolute_url()}")
        if not options["wait"]:
            return
        cursor, deadline = 0, time.monotonic() + options["timeout"]
        while time.monotonic() < deadline:
            for step in steps_after(trace_id=trace.id, after=cursor):
                cursor = step.seq
                detail = (
                    step.error
                    or json.dumps(step.output if step.output is not None else step.input)[:160]
                )
                self.stdout.write(f"#{step.seq:<4} {step.kind:<11} {step.name:<20} {detail}")
            trace.refresh_from_db()
            if trace.is_finished and not steps_after(trace_id=trace.id, after=cursor):
                self.stdout.write(f"{trace.status}: {trace.output or trace.error}")
                if trace.status != Trace.Status.SUCCEEDED:
                    raise CommandError(f"run {trace.status}")
                return
            time.sleep(0.2)
        raise CommandError(f"still {trace.status} after {options['timeout']:g} s")
