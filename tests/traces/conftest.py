"""Fixtures for the trace unit tests: a trace with a small, saved step tree."""

from __future__ import annotations

import pytest


@pytest.fixture
def recorded_trace(db):
    """A running trace with steps #1 model_call → #2 tool_call → #3 tool_result (an echo of
    markup) and #4 final under #1. Returns ``(trace, [step1, step2, step3, step4])``."""
    from traces.models import Step
    from traces.services import step_record, trace_create, trace_start

    trace = trace_create(name="Echo run", input="Say <b>hi</b>", agent_slug="demo")
    trace_start(trace_id=trace.id, worker="test-host:1")
    model = step_record(
        trace_id=trace.id,
        kind=Step.Kind.MODEL_CALL,
        name="scripted",
        input={"messages": [{"role": "user", "content": "Say <b>hi</b>"}]},
        output={"content": "", "tool_calls": [{"id": "c1", "name": "echo", "arguments": "{}"}]},
        prompt_tokens=12,
        completion_tokens=5,
    )
    call = step_record(
        trace_id=trace.id,
        kind=Step.Kind.TOOL_CALL,
        name="echo",
        input={"text": "<script>alert(1)</script>"},
        parent=model,
        tool_call_id="c1",
    )
    result = step_record(
        trace_id=trace.id,
        kind=Step.Kind.TOOL_RESULT,
        name="echo",
        input={"text": "<script>alert(1)</script>"},
        output={"text": "<script>alert(1)</script>"},
        parent=call,
        tool_call_id="c1",
    )
    final = step_record(
        trace_id=trace.id,
        kind=Step.Kind.FINAL,
        name="answer",
        output={"content": "hi"},
        parent=model,
    )
    trace.refresh_from_db()
    return trace, [model, call, result, final]
