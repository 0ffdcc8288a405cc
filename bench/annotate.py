"""Benchmark: how long the server takes to put the annotator's next item on screen, on
a queue of 10,000 items.

    .venv/bin/python bench/annotate.py [--items 10000] [--labels 200] [--database-url URL]

Makes a fresh database (SQLite in a temporary directory unless ``--database-url``),
``migrate``, then 2,000 finished traces of 5 steps (written in bulk: this measures the
queue, not trace recording) and a pull-next queue over all 10,000 steps. Then, through
Django's test client in this process (server time: view, database, template; no
network, no browser):

1. ``next``: the annotator presses ``n`` — an htmx POST that saves the label, claims
   the next item and renders it (the whole round of one key press), ``--labels`` times;
2. ``deep``: the same at the end of an overlap-2 queue where this annotator has already
   labelled all but the last items (the claim skips everything they did);
3. ``api``: ``GET /api/queues/<id>/next`` for a fresh annotator each time.

Prints p50/p95/max in ms for each, the server process's CPU time per request (p50,
which the machine's load inflates less than wall time) and the SQL queries per request
(the median; tests/traces/test_annotation_views.py pins the key press's count); the
last line is ``p95_ms=<next p95>``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def setup(database_url: str | None) -> None:
    tmp = tempfile.mkdtemp(prefix="tooltrail-bench-annotate-")
    os.environ["TOOLTRAIL_VAR_DIR"] = tmp
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    else:
        os.environ.pop("DATABASE_URL", None)
    os.environ["DJANGO_SETTINGS_MODULE"] = "tooltrail.settings"
    import django
    from django.conf import settings

    django.setup()
    # Labels are broadcast after commit; nobody listens here, and no Redis is needed.
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    if os.environ.get("BENCH_CONN_MAX_AGE"):
        settings.DATABASES["default"]["CONN_MAX_AGE"] = int(os.environ["BENCH_CONN_MAX_AGE"])
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def make_steps(n_traces: int, per_trace: int) -> list:
    from django.utils import timezone

    from traces.models import Step, Trace

    now = timezone.now()
    traces = Trace.objects.bulk_create(
        [
            Trace(
                id=uuid.uuid4(),
                name="bench",
                agent_slug="bench",
                status="succeeded",
                input=f"question {i}",
                step_count=per_trace,
                started_at=now,
                ended_at=now,
            )
            for i in range(n_traces)
        ],
        batch_size=1000,
    )
    schema = {"type": "object", "properties": {"x": {"type": "integer"}}}
    Step.objects.bulk_create(
        [
            Step(
                trace=t,
                seq=s,
                kind="tool_call" if s % 2 == 0 else "model_call",
                name="calc",
                input={"x": s},
                output={"content": f"step {s}"},
                metadata={"schema": schema},
                started_at=now,
                ended_at=now,
            )
            for t in traces
            for s in range(1, per_trace + 1)
        ],
        batch_size=2000,
    )
    return [t.id for t in traces]


class Meter:
    """Wall time, this process's CPU time and the SQL queries of each measured request."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self.queries: list[int] = []
        self._count = 0

    def _counting(self, execute, sql, params, many, context):
        self._count += 1
        return execute(sql, params, many, context)

    def __call__(self, request):
        from django.db import connection

        self._count = 0
        t0, c0 = time.perf_counter(), time.process_time()
        with connection.execute_wrapper(self._counting):
            response = request()
        self.wall.append((time.perf_counter() - t0) * 1000)
        self.cpu.append((time.process_time() - c0) * 1000)
        self.queries.append(self._count)
        return response


def summary(name: str, meter: Meter) -> float:
    samples = sorted(meter.wall)
    p95 = samples[max(0, int(len(samples) * 0.95) - 1)]
    print(
        f"{name:5s} n={len(samples):4d}  p50 {statistics.median(samples):6.1f} ms  "
        f"p95 {p95:6.1f} ms  max {samples[-1]:6.1f} ms  "
        f"cpu p50 {statistics.median(meter.cpu):5.1f} ms  "
        f"queries {statistics.median(meter.queries):g}"
    )
    return p95


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--labels", type=int, default=200)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    setup(args.database_url)

    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.test.utils import setup_test_environment

    from tooltrail.services import api_token_create, roles_sync
    from traces.annotation_models import QueueAssignment, QueueItem
    from traces.annotation_services import queue_create, queue_next

    setup_test_environment()
    roles_sync()
    per_trace = 5
    started = time.perf_counter()
    trace_ids = make_steps(args.items // per_trace, per_trace)
    queue = queue_create(name="bench", trace_ids=trace_ids)
    deep = queue_create(name="bench deep", trace_ids=trace_ids, overlap=2)
    print(
        f"setup: {QueueItem.objects.filter(queue=queue).count()} items per queue "
        f"in {time.perf_counter() - started:.1f} s"
    )

    from django.contrib.auth.models import Group

    users = get_user_model().objects
    ana = users.create_user("ana")
    ana.groups.add(Group.objects.get(name="annotator"))
    client = Client()
    client.force_login(ana)
    htmx = {"HTTP_HX_REQUEST": "true"}

    def label_rounds(q, n: int) -> Meter:
        meter = Meter()
        current = queue_next(queue=q, user=ana)
        for _ in range(n):
            url = f"/queues/{q.id}/items/{current.item_id}/label/"
            response = meter(lambda: client.post(url, {"verdict": "good"}, **htmx))  # noqa: B023
            assert response.status_code == 200 and b'data-item="' in response.content, (
                response.content[:300]
            )
            current = QueueAssignment.objects.filter(queue=q, user=ana, status="claimed").get()
        return meter

    p95 = summary("next", label_rounds(queue, args.labels))

    # ana has done all but the last items of the overlap-2 queue (nobody else has).
    items = list(
        QueueItem.objects.filter(queue=deep).order_by("position").values_list("id", "position")
    )
    keep = args.labels + 5
    QueueAssignment.objects.bulk_create(
        [
            QueueAssignment(item_id=i, queue=deep, user=ana, position=p, status="done")
            for i, p in items[:-keep]
        ],
        batch_size=2000,
    )
    QueueItem.objects.filter(queue=deep, position__lte=len(items) - keep).update(
        claims=1, done_count=1
    )
    summary("deep", label_rounds(deep, args.labels))

    meter = Meter()
    for i in range(args.labels):
        user = users.create_user(f"api-{i}")
        user.groups.add(Group.objects.get(name="annotator"))
        headers = {"HTTP_AUTHORIZATION": f"Bearer {api_token_create(user=user)[1]}"}
        response = meter(lambda: client.get(f"/api/queues/{queue.id}/next", **headers))  # noqa: B023
        assert response.status_code == 200 and response.json()["item"], response.content
    summary("api", meter)
    print(f"p95_ms={p95:.1f}")


if __name__ == "__main__":
    main()
