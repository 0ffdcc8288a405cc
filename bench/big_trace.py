"""Benchmark: how fast a very big trace opens.

    .venv/bin/python bench/big_trace.py [--steps 10000] [--depth 1000]

Starts its own stack (Redis: ``REDIS_URL`` or an embedded server; a fresh SQLite file
or ``--database-url``; ``migrate``; one Daphne), writes two traces straight into the
database — ``--steps`` steps of model call → tool call → tool result turns, and a chain
``--depth`` steps deep — then for each:

1. server: ``GET /traces/<id>/`` over HTTP (signed in), best of 5: time to the whole
   response and its size (the first screen; the rest streams over the websocket);
2. Chromium (``/usr/bin/chromium`` through Playwright): first contentful paint, the time
   until the first step row is visible, and the time until every step is in the tree
   (streamed by the websocket's catch-up in bounded frames).

The last line is ``first_paint_ms=<first contentful paint of the big trace>``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tooltrail import launcher  # noqa: E402

CHROMIUM = os.environ.get("TOOLTRAIL_CHROMIUM", "/usr/bin/chromium")


def make_trace(*, steps: int, chain: bool) -> str:
    """A finished trace with ``steps`` steps, written with bulk inserts."""
    from django.utils import timezone

    from traces.models import Step, Trace

    start = timezone.now() - timedelta(seconds=steps / 50)
    trace = Trace.objects.create(
        name="Deep chain" if chain else "Big trace",
        input="benchmark",
        status=Trace.Status.SUCCEEDED,
        started_at=start,
        ended_at=start + timedelta(seconds=steps / 50),
        step_count=steps,
    )
    rows = []
    for n in range(1, steps + 1):
        at = start + timedelta(milliseconds=20 * n)
        if chain:
            kind, parent_seq, depth = Step.Kind.TOOL_CALL, (n - 1 or None), n - 1
            data = {"input": {"level": n}}
        else:
            turn = (n - 1) % 3
            kind = [Step.Kind.MODEL_CALL, Step.Kind.TOOL_CALL, Step.Kind.TOOL_RESULT][turn]
            parent_seq = None if turn == 0 else n - 1
            depth = turn
            data = [
                {
                    "output": {
                        "content": f"turn {n}",
                        "tool_calls": [{"id": f"c{n}", "name": "calculator", "arguments": "{}"}],
                    }
                },
                {"input": {"expression": f"{n} * 3"}},
                {"input": {"expression": f"{n - 1} * 3"}, "output": {"result": (n - 1) * 3}},
            ][turn]
        meta = {"depth": depth}
        if parent_seq:
            meta["parent_seq"] = parent_seq
        rows.append(
            Step(
                trace=trace,
                seq=n,
                kind=kind,
                name="calculator" if kind != Step.Kind.MODEL_CALL else "scripted",
                started_at=at,
                ended_at=at + timedelta(milliseconds=15),
                metadata=meta,
                **data,
            )
        )
    Step.objects.bulk_create(rows, batch_size=2000)
    # Parent links by id, as step_record writes them.
    ids = dict(Step.objects.filter(trace=trace).values_list("seq", "id"))
    updates = []
    for step in Step.objects.filter(trace=trace).only("id", "seq", "metadata"):
        parent_seq = step.metadata.get("parent_seq")
        if parent_seq:
            step.parent_id = ids[parent_seq]
            updates.append(step)
    Step.objects.bulk_update(updates, ["parent"], batch_size=2000)
    return str(trace.id)


def session_cookie() -> tuple[str, str]:
    from django.conf import settings
    from django.contrib.auth import (
        BACKEND_SESSION_KEY,
        HASH_SESSION_KEY,
        SESSION_KEY,
        get_user_model,
    )
    from django.contrib.sessions.backends.db import SessionStore

    user, _ = get_user_model().objects.get_or_create(
        username="bench", defaults={"is_superuser": True, "is_staff": True}
    )
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.save()
    return settings.SESSION_COOKIE_NAME, session.session_key


def server_figures(base: str, trace_id: str, cookie: tuple[str, str]) -> tuple[float, int]:
    import httpx

    times, size = [], 0
    with httpx.Client(base_url=base, cookies={cookie[0]: cookie[1]}, timeout=60) as client:
        for _ in range(5):
            began = time.perf_counter()
            response = client.get(f"/traces/{trace_id}/")
            times.append(time.perf_counter() - began)
            assert response.status_code == 200, response.status_code
            size = len(response.content)
    return min(times) * 1000, size


def browser_figures(browser, base: str, trace_id: str, cookie, steps: int) -> dict[str, float]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.add_cookies([{"name": cookie[0], "value": cookie[1], "url": base}])
    page = context.new_page()
    began = time.perf_counter()
    page.goto(f"{base}/traces/{trace_id}/", wait_until="commit")
    page.locator("#step-1").wait_for(state="visible", timeout=30_000)
    first_row = (time.perf_counter() - began) * 1000
    page.wait_for_function(
        f"document.querySelectorAll('#steps > li.step').length >= {steps}", timeout=120_000
    )
    all_rows = (time.perf_counter() - began) * 1000
    fcp = page.evaluate(
        "() => (performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime || -1"
    )
    context.close()
    return {"fcp": fcp, "first_row": first_row, "all_rows": all_rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--depth", type=int, default=1_000)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="tooltrail-bigtrace-")
    daphne = None
    try:
        with launcher.redis_url() as redis:
            env = {
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "tooltrail.settings",
                "TOOLTRAIL_VAR_DIR": tmp,
                "DATABASE_URL": args.database_url or f"sqlite:///{tmp}/bench.sqlite3",
                "REDIS_URL": redis,
                "LOG_LEVEL": "WARNING",
                "PYTHONUNBUFFERED": "1",
            }
            os.environ.update(env)
            import django

            django.setup()
            launcher.manage("migrate", "--noinput", "-v", "0", env=env)
            big = make_trace(steps=args.steps, chain=False)
            deep = make_trace(steps=args.depth, chain=True)
            cookie = session_cookie()
            port = launcher.free_port()
            base = f"http://127.0.0.1:{port}"
            daphne = launcher.start_daphne(port=port, env=env, quiet=True)
            from playwright.sync_api import sync_playwright

            results = {}
            for label, trace_id in (("big", big), ("deep", deep)):
                server_ms, size = server_figures(base, trace_id, cookie)
                results[label] = {"server_ms": server_ms, "bytes": size}
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
                )
                browser_figures(browser, base, big, cookie, args.steps)  # warm the caches
                for label, trace_id, steps in (
                    ("big", big, args.steps),
                    ("deep", deep, args.depth),
                ):
                    runs = [
                        browser_figures(browser, base, trace_id, cookie, steps) for _ in range(3)
                    ]
                    for key in ("fcp", "first_row", "all_rows"):
                        results[label][key] = statistics.median(r[key] for r in runs)
                browser.close()
            for label, steps in (("big", args.steps), ("deep", args.depth)):
                r = results[label]
                what = f"{steps} steps" if label == "big" else f"{steps} steps, nested {steps} deep"
                print(
                    f"{label} trace ({what}): server {r['server_ms']:.0f} ms, "
                    f"{r['bytes'] / 1024:.0f} KiB; Chromium first contentful paint "
                    f"{r['fcp']:.0f} ms, first step visible {r['first_row']:.0f} ms, "
                    f"all {steps} steps in the tree {r['all_rows']:.0f} ms",
                    flush=True,
                )
            print(f"first_paint_ms={results['big']['fcp']:.0f}", flush=True)
            return 0
    finally:
        if daphne is not None:
            launcher.stop(daphne)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
