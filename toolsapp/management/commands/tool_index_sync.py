"""``manage.py tool_index_sync``: bring the saved tool index up to date now."""

import json
import time

from django.core.management.base import BaseCommand

from toolsapp.retrieval.store import tool_index_store


class Command(BaseCommand):
    help = (
        "Index tools that changed since the saved tool index (embedding only new text) and "
        "save it, so the first search of an agent or page does not wait for it. Last line: "
        '{"tools": N, "seconds": S}.'
    )

    def handle(self, *args, **options) -> None:
        started = time.perf_counter()
        store = tool_index_store()
        index = store.sync()
        store.flush()
        seconds = round(time.perf_counter() - started, 2)
        self.stdout.write(json.dumps({"tools": len(index), "seconds": seconds}))
