"""``manage.py dashboard_rollup [--rebuild]``: fold every ended hour into the dashboard's
roll-up now (a backfill after an upgrade or a bulk load); beat does the same each minute."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand

from traces.rollup_models import RollupHour
from traces.rollup_services import rollup_fold, rollup_rebuild


class Command(BaseCommand):
    help = (
        "Fold every ended hour into the dashboard's hourly roll-up (the beat task does "
        "the same every minute). --rebuild drops the roll-up first."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--rebuild", action="store_true", help="drop every folded hour, then fold again"
        )

    def handle(self, *args, **options) -> None:
        started = time.monotonic()
        if options["rebuild"]:
            rollup_rebuild()
        folded = rollup_fold()
        self.stdout.write(
            f"folded {folded} hours in {time.monotonic() - started:.1f} s; "
            f"{RollupHour.objects.count()} hours in the roll-up"
        )
