"""Benchmark: what killable tool calls cost, and how fast a worker recovers from a runaway.

    .venv/bin/python bench/tool_kill.py [--calls 200] [--runaways 5] [--timeout 0.5]

Every ``python`` tool call runs in a forked child process (``toolsapp.processes``) so
that one that overruns its timeout can be killed. This prints:

1. per-call overhead: the built-in ``echo`` tool called ``--calls`` times directly in
   this process and through ``tool_execute`` (fork, run, JSON over a pipe, reap), with
   p50/p95 of each and the difference;
2. recovery: ``--runaways`` times, a busy-loop tool with a ``--timeout`` s limit is
   started; we time from the moment its deadline passes to the moment the next call
   (``echo``) has answered — the kill, the reap and one fresh call;
3. cancel latency: from ``cancel.set()`` to ToolCancelled, with a 60 s timeout;
4. a ``code`` tool call in the sandbox (namespaces, mounts, fresh ``python -I -S``), and
   recovery after a sandboxed busy loop is killed (needs root).

The last line is ``recovery_p95_ms=…``. No database is needed (unsaved Tool rows). The
process first loads what an agent worker loads, since a fork's cost grows with the
process it copies.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tooltrail.settings")
# The runaway below is this script's own function: allowed as a python tool target here.
os.environ["TOOLTRAIL_PYTHON_TOOLS"] = "__main__:spin"

import django  # noqa: E402

django.setup()

# A fork copies the process it is made from: load what an agent worker loads (the task
# modules, and through Django's checks the URLconf and views) and freeze it, as the
# worker does (agents.upkeep), so a call here costs what it costs there.
import gc  # noqa: E402

from tooltrail.celery import app  # noqa: E402

app.loader.import_default_modules()
gc.collect()
gc.freeze()

from toolsapp import builtin  # noqa: E402
from toolsapp.executors import ToolCancelled, ToolTimeout  # noqa: E402
from toolsapp.models import Tool  # noqa: E402
from toolsapp.services import tool_execute  # noqa: E402


def spin(**arguments):
    while True:
        pass


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def line(name: str, values: list[float]) -> str:
    return f"{name}: p50={pct(values, 0.5):.2f} ms p95={pct(values, 0.95):.2f} ms n={len(values)}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--runaways", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=0.5)
    parser.add_argument("--sandbox-calls", type=int, default=20)
    args = parser.parse_args()

    echo = Tool(
        name="echo",
        kind="python",
        config={"callable": "toolsapp.builtin:echo"},
        parameters={"type": "object", "properties": {"text": {"type": "string"}}},
    )
    runaway = Tool(name="spin", kind="python", config={"callable": "__main__:spin"}, parameters={})
    runaway.timeout_seconds = args.timeout

    direct, forked = [], []
    for _ in range(args.calls):
        t = time.perf_counter()
        builtin.echo(text="hi")
        direct.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        tool_execute(tool=echo, arguments={"text": "hi"})
        forked.append((time.perf_counter() - t) * 1000)
    print(line("direct call", direct))
    print(line("killable call (fork per call)", forked))
    print(f"overhead p50={pct(forked, 0.5) - pct(direct, 0.5):.2f} ms")

    recovery = []
    for _ in range(args.runaways):
        start = time.perf_counter()
        with contextlib.suppress(ToolTimeout):
            tool_execute(tool=runaway, arguments={})
        tool_execute(tool=echo, arguments={"text": "after"})
        recovery.append((time.perf_counter() - start - args.timeout) * 1000)
    print(line("recovery after a runaway (deadline → next answer)", recovery))

    cancel_latency = []
    runaway.timeout_seconds = 60
    for _ in range(args.runaways):
        cancel = threading.Event()
        stamp: list[float] = []

        def fire(cancel=cancel, stamp=stamp):
            stamp.append(time.perf_counter())
            cancel.set()

        threading.Timer(0.2, fire).start()
        try:
            tool_execute(tool=runaway, arguments={}, cancel=cancel)
        except ToolCancelled:
            cancel_latency.append((time.perf_counter() - stamp[0]) * 1000)
    print(line("cancel → ToolCancelled", cancel_latency))

    from toolsapp.sandbox import sandbox_run

    sandboxed = []
    for _ in range(args.sandbox_calls):
        t = time.perf_counter()
        sandbox_run(source="def f(x):\n    return x\n", function="f", arguments={"x": 1}, timeout=5)
        sandboxed.append((time.perf_counter() - t) * 1000)
    print(line("sandboxed code call", sandboxed))
    sandbox_recovery = []
    for _ in range(args.runaways):
        start = time.perf_counter()
        with contextlib.suppress(ToolTimeout):
            sandbox_run(
                source="def f():\n    while True:\n        pass\n",
                function="f",
                arguments={},
                timeout=args.timeout,
            )
        sandbox_run(source="def f():\n    return 1\n", function="f", arguments={}, timeout=5)
        sandbox_recovery.append((time.perf_counter() - start - args.timeout) * 1000)
    print(line("recovery after a sandboxed runaway (deadline → next answer)", sandbox_recovery))
    print(f"recovery_p95_ms={pct(recovery, 0.95):.1f}")


if __name__ == "__main__":
    main()
