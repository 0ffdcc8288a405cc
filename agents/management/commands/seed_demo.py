from django.core.management.base import BaseCommand

from agents.demo import demo_seed, demo_traces_seed
from tooltrail.services import roles_sync
from traces.demo import annotation_demo_seed

# More demo data after the agents' finished runs, in order; each is idempotent. Another
# app adds its own by appending its function here.
DEMO_SEEDERS = [
    annotation_demo_seed,  # demo traces and a labelled demo queue (traces/demo.py)
]


class Command(BaseCommand):
    help = "Create the roles, built-in tools, demo agents and demo runs (safe to run again)."

    def handle(self, *args, **options) -> None:
        roles_sync()
        agents = demo_seed()
        made = len(demo_traces_seed())
        for seeder in DEMO_SEEDERS:
            seeder()
        self.stdout.write(
            f"Demo data ready: agents {', '.join(sorted(agents))}; {made} demo runs added; "
            "roles admin, builder, annotator, viewer."
        )
