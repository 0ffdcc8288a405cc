"""A runaway python tool on a real worker: killed at its timeout, recorded as an error
step, and the run and the worker go on."""

from __future__ import annotations

import os

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_runaway_tool_is_killed_the_run_records_a_timeout_and_the_worker_goes_on(
    stack, scripted_agent, tmp_path
):
    from agents.services import agent_run_start
    from toolsapp.models import Tool
    from traces.models import Step, Trace

    marker = tmp_path / "spinner.pid"
    spinner = Tool.objects.create(
        name="spinner",
        kind=Tool.Kind.PYTHON,
        config={"callable": "tests.agents.runaway_tools:spin"},
        parameters={"type": "object", "properties": {"marker": {"type": "string"}}},
        timeout_seconds=1,
    )
    agent = scripted_agent(
        [
            {"tool_calls": [{"name": "spinner", "arguments": {"marker": str(marker)}}]},
            {"content": "It took too long; moving on."},
        ]
    )
    calculating = scripted_agent(
        [
            {"tool_calls": [{"name": "calculator", "arguments": {"expression": "6*7"}}]},
            {"content": "42"},
        ]
    )
    agent.toolset.tools.add(spinner)

    first = agent_run_start(agent=agent, input="spin")
    stack.wait_until(
        lambda: Trace.objects.get(pk=first.pk).is_finished, timeout=60, what="the first run"
    )
    first.refresh_from_db()
    assert first.status == Trace.Status.SUCCEEDED
    error = Step.objects.get(trace=first, kind=Step.Kind.ERROR)
    assert error.error == "spinner failed: the tool did not answer within 1 s"
    assert Step.objects.get(trace=first, kind=Step.Kind.FINAL).output
    pid = int(marker.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)

    # The same worker takes the next run and answers it.
    second = agent_run_start(agent=calculating, input="again")
    stack.wait_until(
        lambda: Trace.objects.get(pk=second.pk).is_finished, timeout=60, what="the second run"
    )
    second.refresh_from_db()
    assert second.status == Trace.Status.SUCCEEDED
    result = Step.objects.get(trace=second, kind=Step.Kind.TOOL_RESULT)
    assert result.output == {"expression": "6*7", "result": 42}
