from django.core.management.base import BaseCommand

from agents.demo import demo_seed, demo_traces_seed
from tooltrail.services import roles_sync

# Demo data beyond the agents, in order; each is idempotent and returns what it made.
# Another app adds its own (e.g. annotated traces) by appending its function here.
DEMO_SEEDERS = [demo_traces_seed]


class Command(BaseCommand):
    help = "Create the roles, built-in tools, demo agents and demo runs (safe to run again)."

    def handle(self, *args, **options) -> None:
        roles_sync()
        agents = demo_seed()
        made = sum(len(seeder() or []) for seeder in DEMO_SEEDERS)
        self.stdout.write(
            f"Demo data ready: agents {', '.join(sorted(agents))}; {made} demo runs added; "
            "roles admin, builder, annotator, viewer."
        )
