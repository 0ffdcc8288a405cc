"""An agent on a real worker calls MCP tools: every call is a recorded step, and the
worker keeps one session to the server across the calls."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

CHANGING = Path(__file__).resolve().parents[1] / "toolsapp" / "servers" / "changing_mcp.py"


def test_an_agent_calls_mcp_tools_over_one_session_in_the_worker(stack, scripted_agent, tmp_path):
    from agents.services import agent_run_start
    from toolsapp.mcpclient import SESSIONS
    from toolsapp.mcpservers import mcp_server_register, mcp_server_sync
    from toolsapp.models import Tool
    from traces.models import Step, Trace

    catalogue = tmp_path / "tools.json"
    catalogue.write_text('[{"name": "alpha", "description": "Echo a text."}]')
    mcp_server_sync(
        server=mcp_server_register(
            name="changing", command=f"{sys.executable} {CHANGING} {catalogue}"
        )
    )
    SESSIONS.close()  # the test's own session; the worker opens its own
    agent = scripted_agent(
        [
            {"tool_calls": [{"name": "pid", "arguments": {}}]},
            {"tool_calls": [{"name": "alpha", "arguments": {"text": "hello"}}]},
            {"tool_calls": [{"name": "pid", "arguments": {}}]},
            {"content": "done"},
        ]
    )
    agent.toolset.tools.add(*Tool.objects.filter(source="mcp:changing"))

    trace = agent_run_start(agent=agent, input="use the server")
    stack.wait_until(lambda: Trace.objects.get(pk=trace.pk).is_finished, timeout=60, what="run")
    trace.refresh_from_db()
    assert trace.status == Trace.Status.SUCCEEDED, trace.error
    results = list(
        Step.objects.filter(trace=trace, kind=Step.Kind.TOOL_RESULT)
        .order_by("seq")
        .values_list("name", "output")
    )
    assert [name for name, _ in results] == ["pid", "alpha", "pid"]
    assert results[1][1] == {"result": "alpha: hello"}
    first_pid, last_pid = results[0][1]["result"], results[2][1]["result"]
    assert first_pid == last_pid, json.dumps(results)
