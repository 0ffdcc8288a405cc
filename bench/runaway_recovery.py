"""Benchmark: how soon is a worker useful again after a runaway tool?

    .venv/bin/python bench/runaway_recovery.py [--tries 3]

Starts its own stack (embedded Redis, a fresh SQLite database, one prefork worker with
one pool child) and measures, for each try:

1. runaway: a run calls ``calculator("round(1, -10**9)")`` (before the caps, an hour of
   CPU with the GIL held). Seconds until that run has ended, then until a next run
   on the same worker has completed.
2. killed: a run sleeps in a tool; its pool child is killed with SIGKILL. Seconds until
   the trace is failed (Celery's WorkerLostError, not the 30 s heartbeat reaper), then
   until a next run (on the replacement child) has completed.
3. spin: a python tool busy-loops past its 1 s timeout and is killed (toolsapp's killable
   calls). Seconds from its deadline until the run has ended (timeout error step, the
   model's next turn), then until a next run has completed.
4. cancel: a run is cancelled while its tool spins (60 s timeout). Seconds from the
   cancel request until the trace is cancelled (the runner's watcher sets the cancel
   event; the tool call is killed).
5. model: a run is cancelled while the embedded local model (llama.cpp) evaluates a
   prompt of about 2,000 tokens (half a minute or more on this machine). Seconds from
   the cancel request until the trace is cancelled.

Prints one line per measure with the median over ``--tries``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tooltrail import launcher  # noqa: E402


def agent(slug: str, script: list[dict]):
    from agents.models import Agent, ModelEndpoint
    from toolsapp.models import Toolset

    endpoint, _ = ModelEndpoint.objects.update_or_create(
        name=slug, defaults={"kind": "scripted", "config": {"script": script}}
    )
    found, _ = Agent.objects.update_or_create(
        slug=slug,
        defaults={
            "name": slug,
            "endpoint": endpoint,
            "toolset": Toolset.objects.get(slug="builtin"),
        },
    )
    return found


def wait(predicate, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise TimeoutError("gave up waiting")


def finished(trace_id):
    from traces.models import Trace

    trace = Trace.objects.get(pk=trace_id)
    return trace if trace.is_finished else None


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tries", type=int, default=3)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="tooltrail-bench-")
    worker = None
    try:
        with launcher.redis_url() as redis:
            env = {
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "tooltrail.settings",
                "TOOLTRAIL_VAR_DIR": tmp,
                "DATABASE_URL": f"sqlite:///{tmp}/bench.sqlite3",
                "REDIS_URL": redis,
                "LOG_LEVEL": "WARNING",
                "TOOLTRAIL_TOOL_TIMEOUT_SECONDS": "60",
                # the spinning tool lives in the tests; python tools must be allow-listed
                "TOOLTRAIL_PYTHON_TOOLS": "tests.agents.runaway_tools:*",
            }
            os.environ.update(env)
            import django

            django.setup()
            launcher.manage("migrate", "--noinput", "-v", "0", env=env)
            from agents.services import agent_run_start
            from toolsapp.services import builtin_tools_sync
            from traces.models import Trace

            builtin_tools_sync()
            worker = launcher.start_worker(
                queues="agents",
                env=env,
                concurrency=1,
                pool="prefork",
                name=f"bench-{os.getpid()}@%h",
                logfile=f"{tmp}/worker.log",
                quiet=True,
            )
            quick = agent("quick", [{"content": "hi"}])
            runaway = agent(
                "runaway",
                [
                    {
                        "tool_calls": [
                            {"name": "calculator", "arguments": {"expression": "round(1, -10**9)"}}
                        ]
                    },
                    {"content": "done"},
                ],
            )
            sleeper = agent(
                "sleeper",
                [
                    {"tool_calls": [{"name": "sleep", "arguments": {"seconds": 60}}]},
                    {"content": "up"},
                ],
            )
            from toolsapp.models import Tool
            from traces.services import trace_cancel

            spinner = Tool.objects.update_or_create(
                name="spinner",
                source="",
                defaults={
                    "kind": Tool.Kind.PYTHON,
                    "config": {"callable": "tests.agents.runaway_tools:spin"},
                    "parameters": {"type": "object", "properties": {"marker": {"type": "string"}}},
                    "timeout_seconds": 1,
                },
            )[0]
            marker = Path(tmp) / "spin.pid"
            spin = agent(
                "spin",
                [
                    {"tool_calls": [{"name": "spinner", "arguments": {"marker": str(marker)}}]},
                    {"content": "moving on"},
                ],
            )
            spin.toolset.tools.add(spinner)
            from agents.models import ModelEndpoint

            local = agent("local", [])
            local.endpoint = ModelEndpoint.objects.create(
                name="local-long", kind="local", config={"n_ctx": 4096, "max_tokens": 512}
            )
            local.save(update_fields=["endpoint"])
            long_input = " ".join(f"Item {i} is an apple numbered {i}." for i in range(200))
            first = agent_run_start(agent=quick, input="warm up")
            wait(lambda: finished(first.id))

            measures: dict[str, list[float]] = {
                k: []
                for k in (
                    "runaway run ended",
                    "next run done after runaway",
                    "killed run failed",
                    "next run done after kill",
                    "spinning tool's run ended after its deadline",
                    "next run done after spin",
                    "cancel to cancelled, tool spinning",
                    "cancel to cancelled, local model generating",
                )
            }
            for _ in range(args.tries):
                started = time.monotonic()
                trace = agent_run_start(agent=runaway, input="runaway")
                ended = wait(lambda t=trace: finished(t.id))
                measures["runaway run ended"].append(time.monotonic() - started)
                assert ended.step_count >= 3, ended.error
                mark = time.monotonic()
                nxt = agent_run_start(agent=quick, input="next")
                assert wait(lambda t=nxt: finished(t.id)).status == "succeeded"
                measures["next run done after runaway"].append(time.monotonic() - mark)

                trace = agent_run_start(agent=sleeper, input="sleep")
                running = wait(
                    lambda t=trace: Trace.objects.filter(pk=t.id, step_count__gte=2).first()
                )
                os.kill(int(running.worker.rsplit(":", 1)[1]), signal.SIGKILL)
                mark = time.monotonic()
                failed = wait(lambda t=trace: finished(t.id))
                measures["killed run failed"].append(time.monotonic() - mark)
                assert failed.error.startswith("worker lost"), failed.error
                nxt = agent_run_start(agent=quick, input="next")
                assert wait(lambda t=nxt: finished(t.id)).status == "succeeded"
                measures["next run done after kill"].append(time.monotonic() - mark)

                marker.unlink(missing_ok=True)
                trace = agent_run_start(agent=spin, input="spin")
                wait(marker.exists)
                deadline = time.monotonic() + 1.0
                ended = wait(lambda t=trace: finished(t.id))
                measures["spinning tool's run ended after its deadline"].append(
                    time.monotonic() - deadline
                )
                assert ended.status == "succeeded", ended.error
                mark = time.monotonic()
                nxt = agent_run_start(agent=quick, input="next")
                assert wait(lambda t=nxt: finished(t.id)).status == "succeeded"
                measures["next run done after spin"].append(time.monotonic() - mark)

                Tool.objects.filter(pk=spinner.pk).update(timeout_seconds=60)
                marker.unlink(missing_ok=True)
                trace = agent_run_start(agent=spin, input="spin, then cancel")
                wait(marker.exists)
                mark = time.monotonic()
                trace_cancel(trace_id=trace.id)
                assert wait(lambda t=trace: finished(t.id)).status == "cancelled"
                measures["cancel to cancelled, tool spinning"].append(time.monotonic() - mark)
                Tool.objects.filter(pk=spinner.pk).update(timeout_seconds=1)

                trace = agent_run_start(agent=local, input=long_input)
                wait(lambda t=trace: Trace.objects.filter(pk=t.id, status="running").exists())
                time.sleep(3.0)  # the model is loaded and deep in the prompt
                mark = time.monotonic()
                trace_cancel(trace_id=trace.id)
                ended = wait(lambda t=trace: finished(t.id))
                assert ended.status == "cancelled", ended.error
                measures["cancel to cancelled, local model generating"].append(
                    time.monotonic() - mark
                )
            for name, values in measures.items():
                print(
                    f"{name}: median {statistics.median(values):.2f} s "
                    f"(of {len(values)}: {', '.join(f'{v:.2f}' for v in values)})",
                    flush=True,
                )
            return 0
    finally:
        launcher.stop(worker)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
