from django.core.management.base import BaseCommand

from agents.demo import demo_seed
from tooltrail.services import roles_sync
from traces.demo import annotation_demo_seed


class Command(BaseCommand):
    help = "Create the roles, built-in tools and demo agents (safe to run again)."

    def handle(self, *args, **options) -> None:
        roles_sync()
        agents = demo_seed()
        annotation_demo_seed()  # finished demo traces and a labelled demo queue (traces/demo.py)
        self.stdout.write(
            f"Demo data ready: agents {', '.join(sorted(agents))}; roles admin, annotator, viewer."
        )
