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


@pytest.fixture
def demo_queue(db):
    """The seeded demo queue: five finished traces, every step labelled by demo-ana and
    demo-ben (overlap 2), with disagreements and two corrected calls."""
    from tooltrail.services import roles_sync
    from traces.demo import annotation_demo_seed

    roles_sync()
    return annotation_demo_seed()


@pytest.fixture
def schema_trace(db):
    """A finished trace of the demo shape whose tool call (#2, clock) carries its schema
    and broke it ({"tz": 5}); #3 is the error, then a retry."""
    from traces.demo import RUNS, demo_run_record
    from traces.taxonomy import error_categories_seed

    error_categories_seed()  # a transactional test before this one flushed the migration's rows
    return demo_run_record(input=RUNS[1]["input"], turns=RUNS[1]["turns"])
