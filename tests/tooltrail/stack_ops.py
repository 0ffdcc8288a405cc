"""Run against a stack that `launcher up` started (its environment): start runs and
report what became of them, as JSON on the last line of stdout.

    python tests/tooltrail/stack_ops.py runs N      # N quick runs; wait for all to end
    python tests/tooltrail/stack_ops.py slow        # one run sleeping in a tool; wait until it runs
    python tests/tooltrail/stack_ops.py wait ID     # wait until trace ID ends
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tooltrail.settings")

import django  # noqa: E402

django.setup()

from agents.models import Agent, ModelEndpoint  # noqa: E402
from agents.services import agent_run_start  # noqa: E402
from toolsapp.models import Toolset  # noqa: E402
from traces.models import Trace  # noqa: E402


def agent(slug: str, script: list[dict]) -> Agent:
    endpoint, _ = ModelEndpoint.objects.update_or_create(
        name=f"ops-{slug}", defaults={"kind": "scripted", "config": {"script": script}}
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


def wait(ids: list, timeout: float = 90) -> list[Trace]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        traces = list(Trace.objects.filter(pk__in=ids))
        if all(t.is_finished for t in traces):
            return traces
        time.sleep(0.2)
    return list(Trace.objects.filter(pk__in=ids))


def main(argv: list[str]) -> dict:
    if argv[0] == "runs":
        quick = agent("ops-quick", [{"content": "hi"}])
        ids = [agent_run_start(agent=quick, input=f"run {i}").id for i in range(int(argv[1]))]
        return {"statuses": sorted(t.status for t in wait(ids))}
    if argv[0] == "slow":
        slow = agent(
            "ops-slow",
            [{"tool_calls": [{"name": "sleep", "arguments": {"seconds": 60}}]}, {"content": "up"}],
        )
        trace = agent_run_start(agent=slow, input="sleep")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            trace.refresh_from_db()
            if trace.status == "running" and trace.step_count >= 2:  # in the tool call
                return {"trace": str(trace.id), "worker": trace.worker}
            time.sleep(0.1)
        return {"trace": str(trace.id), "status": trace.status}
    if argv[0] == "wait":
        [trace] = wait([argv[1]])
        return {"status": trace.status, "error": trace.error}
    raise SystemExit(__doc__)


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])))
