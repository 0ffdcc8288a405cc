"""How fast the dashboard's aggregate queries answer over a million steps.

    .venv/bin/python bench/dashboard.py                       # 100,000 runs, 1,000,000 steps
    .venv/bin/python bench/dashboard.py --runs 20000          # smaller
    .venv/bin/python bench/dashboard.py --database-url postgres://postgres@127.0.0.1:5432/tooltrail_bench

It migrates a fresh SQLite database in a temporary directory (or ``--database-url``, an
existing empty database), writes ``--runs`` runs of 10 steps each (model call → tool call
→ result, three turns, every 7th tool call failing, one final answer) spread over the last
30 days across 5 agents, 3 endpoints and 6 tools, then folds every ended hour into the
hourly roll-up (``manage.py dashboard_rollup``'s work, printed as ``rollup_backfill_s=…``)
and times, for the 7-day and 30-day periods (median of ``--repeat`` runs, after one
warm-up): each raw aggregate selector of ``traces.stats`` (what the page used before the
roll-up), ``dashboard_figures`` (roll-up plus the live hours) and the whole page. The last
line is ``dashboard_30d_ms=…`` (the whole page over 30 days).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def steps_insert(tools: list[str]) -> None:
    """Ten steps per run, written by the database itself (INSERT … SELECT over the runs):
    a million rows through the ORM take a quarter of an hour on a small machine. Turn t
    (0-2) is model call → tool call → result (every 7th an error); then a final answer.
    Step ids are ``run number * 10 + position`` so parents are known without a lookup."""
    from django.db import connection

    if connection.vendor == "sqlite":

        def plus_ms(ms: str) -> str:
            return (
                f"strftime('%Y-%m-%d %H:%M:%f', r.created_at, '+' || ({ms}) / 1000.0 || ' seconds')"
            )
    else:

        def plus_ms(ms: str) -> str:
            return f"r.created_at + ({ms}) * interval '1 millisecond'"

    tool_name = (
        "CASE (r.n + {turn}) % 6 "
        + " ".join(f"WHEN {i} THEN '{name}'" for i, name in enumerate(tools))
        + " END"
    )
    runs = (
        "(SELECT id, created_at, ROW_NUMBER() OVER (ORDER BY created_at) AS n FROM traces_trace) r"
    )
    cols = (
        "id, trace_id, seq, parent_id, kind, name, error, status, tool_call_id, span_id, "
        "parent_span_id, started_at, ended_at, prompt_tokens, completion_tokens, metadata, "
        "created_at"
    )
    statements = []
    for turn in range(3):
        base = turn * 3
        model, call, result = base + 1, base + 2, base + 3
        name = tool_name.format(turn=turn)
        failed = f"((r.n + {turn}) % 7 = 0)"
        ms = f"5 + ((r.n * 13 + {turn}) % 200) * (CASE WHEN {name} = 'sleep' THEN 10 ELSE 1 END)"
        statements += [
            f"SELECT r.n * 10 + {model}, r.id, {model}, NULL, 'model_call', 'm', '', 'ok', '', "
            f"'', '', r.created_at, {plus_ms('300')}, 300, 40, '{{}}', r.created_at FROM {runs}",
            f"SELECT r.n * 10 + {call}, r.id, {call}, r.n * 10 + {model}, 'tool_call', {name}, "
            f"'', 'ok', '', '', '', NULL, NULL, 0, 0, '{{}}', r.created_at FROM {runs}",
            f"SELECT r.n * 10 + {result}, r.id, {result}, r.n * 10 + {call}, "
            f"CASE WHEN {failed} THEN 'error' ELSE 'tool_result' END, "
            f"CASE WHEN {failed} THEN 'tool_error' ELSE {name} END, '', "
            f"CASE WHEN {failed} THEN 'error' ELSE 'ok' END, '', '', '', r.created_at, "
            f"{plus_ms(ms)}, 0, 0, '{{}}', r.created_at FROM {runs}",
        ]
    statements.append(
        f"SELECT r.n * 10 + 10, r.id, 10, r.n * 10 + 7, 'final', 'answer', '', 'ok', '', '', "
        f"'', NULL, NULL, 0, 0, '{{}}', r.created_at FROM {runs}"
    )
    with connection.cursor() as cursor:
        for select in statements:
            cursor.execute(f"INSERT INTO traces_step ({cols}) {select}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="tooltrail-bench-dashboard-")
    os.environ["DATABASE_URL"] = args.database_url or f"sqlite:///{tmp}/bench.sqlite3"
    os.environ["TOOLTRAIL_VAR_DIR"] = tmp
    # Settings want a fixed key with a database server; a bench run needs none of its own.
    os.environ.setdefault("SECRET_KEY", "bench-dashboard-" + uuid.uuid4().hex)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tooltrail.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.test import Client
    from django.utils import timezone

    from traces import stats
    from traces.models import Step, Trace
    from traces.rollup import dashboard_figures
    from traces.rollup_services import rollup_fold

    call_command("migrate", verbosity=0)
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_superuser("bench", password="bench-pw-123")

    agents = ["alpha", "beta", "gamma", "delta", "omega"]
    endpoints = ["gpt", "local", "vllm"]
    tools = ["calculator", "clock", "search", "weather", "unit_convert", "sleep"]
    now = timezone.now()
    span = timedelta(days=30).total_seconds()
    started = time.monotonic()
    # The runs carry their own (past) times: keep bulk_create from stamping them "now".
    Trace._meta.get_field("created_at").auto_now_add = False
    traces = []
    for i in range(args.runs):
        at = now - timedelta(seconds=span * (i / args.runs))
        status = (
            Trace.Status.FAILED
            if i % 9 == 0
            else Trace.Status.CANCELLED
            if i % 31 == 0
            else Trace.Status.SUCCEEDED
        )
        traces.append(
            Trace(
                id=uuid.uuid4(),
                name=agents[i % 5],
                agent_slug=agents[i % 5],
                status=status,
                input="bench",
                metadata={"endpoint": endpoints[i % 3]},
                created_at=at,
                started_at=at,
                ended_at=at + timedelta(milliseconds=500 + (i * 37) % 9000),
                step_count=10,
                prompt_tokens=900,
                completion_tokens=120,
            )
        )
    Trace.objects.bulk_create(traces, batch_size=2000)
    del traces
    steps_insert(tools)
    print(
        f"wrote {Trace.objects.count()} runs, {Step.objects.count()} steps "
        f"in {time.monotonic() - started:.0f} s ({django.db.connection.vendor})",
        flush=True,
    )
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")

    started = time.monotonic()
    folded = rollup_fold()
    backfill = time.monotonic() - started
    print(f"roll-up backfill: {folded} hours in {backfill:.1f} s", flush=True)
    print(f"rollup_backfill_s={backfill:.1f}", flush=True)

    cpu: dict[str, float] = {}

    def timed(fn, name: str = "") -> float:
        """Median wall-clock ms; the median CPU ms of this process (with SQLite, the
        database's work too: the figure a shared, loaded machine distorts least) goes to
        ``cpu[name]``."""
        fn()
        samples, cpu_samples = [], []
        for _ in range(args.repeat):
            t, c = time.perf_counter(), time.process_time()
            fn()
            samples.append((time.perf_counter() - t) * 1000)
            cpu_samples.append((time.process_time() - c) * 1000)
        cpu[name] = statistics.median(cpu_samples)
        return statistics.median(samples)

    client = Client(HTTP_HOST="localhost")
    client.force_login(user)

    def page_get(days: int) -> None:
        response = client.get(f"/?period={days}d")
        if response.status_code != 200:
            raise SystemExit(f"/?period={days}d answered {response.status_code}")

    page = {}
    for days in (7, 30):
        period = {"since": now - timedelta(days=days), "until": now + timedelta(seconds=1)}
        queries = {
            "outcomes": lambda p=period: stats.trace_outcomes(**p),
            "runs_over_time": lambda p=period: stats.runs_over_time(**p, bucket="day"),
            "p50_p95": lambda p=period: stats.duration_percentiles(**p),
            "usage": lambda p=period: stats.usage_by_agent_and_endpoint(**p),
            "slowest_tools": lambda p=period: stats.slowest_tools(**p),
            "failing_tools": lambda p=period: stats.failing_tools(**p),
        }
        for name, fn in queries.items():
            print(f"{days}d raw {name}: {timed(fn):.0f} ms", flush=True)
        figures = timed(lambda p=period: dashboard_figures(**p), "figures")
        print(
            f"{days}d dashboard_figures (roll-up + live): {figures:.1f} ms "
            f"(CPU {cpu['figures']:.1f} ms)",
            flush=True,
        )
        page[days] = timed(lambda d=days: page_get(d), "page")
        print(f"{days}d whole page: {page[days]:.0f} ms (CPU {cpu['page']:.0f} ms)", flush=True)
    print(f"dashboard_30d_ms={page[30]:.0f}")


if __name__ == "__main__":
    main()
