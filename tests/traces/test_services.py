"""The record-and-broadcast service: numbering, endings, cancelling, reaping."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from traces.models import Step, Trace
from traces.services import (
    TraceError,
    step_record,
    trace_cancel,
    trace_create,
    trace_finish,
    trace_heartbeat,
    trace_start,
    traces_reap_stale,
)

pytestmark = pytest.mark.django_db


def running(name: str = "run", worker: str = "host-a:42") -> Trace:
    trace = trace_create(name=name, input="go")
    return trace_start(trace_id=trace.id, worker=worker)


def test_a_new_trace_is_queued_with_no_steps():
    trace = trace_create(name="Demo", input="hello", agent_slug="demo", metadata={"agent_id": 1})
    trace.refresh_from_db()
    assert (trace.status, trace.step_count, trace.metadata) == ("queued", 0, {"agent_id": 1})
    assert trace.started_at is None


def test_starting_a_trace_marks_it_running_on_its_worker():
    trace = running(worker="host-b:7")
    trace.refresh_from_db()
    assert trace.status == Trace.Status.RUNNING
    assert trace.worker == "host-b:7"
    assert trace.started_at is not None
    assert trace.heartbeat_at is not None


def test_a_trace_cannot_be_started_twice():
    trace = running()
    with pytest.raises(TraceError, match="is running, not queued"):
        trace_start(trace_id=trace.id)


def test_steps_are_numbered_one_two_three_per_trace():
    first, second = running("a"), running("b")
    seqs_a = [step_record(trace_id=first.id, kind="model_call").seq for _ in range(3)]
    seqs_b = [step_record(trace_id=second.id, kind="model_call").seq for _ in range(2)]
    assert seqs_a == [1, 2, 3]
    assert seqs_b == [1, 2]
    first.refresh_from_db()
    assert first.step_count == 3


def test_a_step_keeps_its_parent_and_the_trace_sums_its_tokens(recorded_trace):
    trace, (model, call, result, final) = recorded_trace
    assert (call.parent, result.parent, final.parent) == (model, call, model)
    assert result.metadata["parent_seq"] == 2
    assert (trace.prompt_tokens, trace.completion_tokens) == (12, 5)
    assert list(Step.objects.filter(trace=trace).values_list("seq", flat=True)) == [1, 2, 3, 4]


def test_an_error_step_is_marked_as_an_error():
    trace = running()
    step = step_record(trace_id=trace.id, kind="error", name="tool_error", error="boom")
    assert step.status == Step.Status.ERROR
    ok = step_record(trace_id=trace.id, kind="tool_result", name="echo", output={"text": "x"})
    assert ok.status == Step.Status.OK


def test_it_refuses_an_unknown_step_kind():
    trace = running()
    with pytest.raises(TraceError, match="unknown step kind 'thought'"):
        step_record(trace_id=trace.id, kind="thought")
    trace.refresh_from_db()
    assert trace.step_count == 0


def test_it_refuses_a_parent_from_another_trace():
    a, b = running("a"), running("b")
    parent = step_record(trace_id=a.id, kind="model_call")
    with pytest.raises(TraceError, match="parent must belong to the same trace"):
        step_record(trace_id=b.id, kind="tool_call", parent=parent)
    assert Step.objects.filter(trace=b).count() == 0


def test_finishing_records_the_outcome_once():
    trace = running()
    done = trace_finish(trace_id=trace.id, status="succeeded", output="42")
    assert (done.status, done.output) == ("succeeded", "42")
    assert done.ended_at is not None

    again = trace_finish(trace_id=trace.id, status="failed", error="late worker")
    assert (again.status, again.output, again.error) == ("succeeded", "42", "")
    assert again.ended_at == done.ended_at


def test_a_finished_trace_takes_no_more_steps():
    trace = running()
    step_record(trace_id=trace.id, kind=Step.Kind.MODEL_CALL, name="m")
    trace_finish(trace_id=trace.id, status="failed", error="worker lost")

    with pytest.raises(TraceError, match="already failed"):
        step_record(trace_id=trace.id, kind=Step.Kind.FINAL, name="late answer")
    trace.refresh_from_db()
    assert trace.step_count == 1
    assert list(trace.steps.values_list("name", flat=True)) == ["m"]


def test_finishing_needs_a_finished_status():
    trace = running()
    with pytest.raises(TraceError, match="'running' is not a finished status"):
        trace_finish(trace_id=trace.id, status="running")


def test_cancelling_a_queued_trace_ends_it_at_once():
    trace = trace_create(name="q", input="go")
    cancelled = trace_cancel(trace_id=trace.id)
    assert cancelled.status == Trace.Status.CANCELLED
    assert cancelled.error == "cancelled before it started"
    assert cancelled.cancel_requested


def test_cancelling_a_running_trace_flags_it_for_its_worker():
    trace = running()
    flagged = trace_cancel(trace_id=trace.id)
    assert flagged.status == Trace.Status.RUNNING
    trace.refresh_from_db()
    assert trace.cancel_requested
    assert trace.status == Trace.Status.RUNNING


def test_a_finished_trace_cannot_be_cancelled():
    trace = running()
    trace_finish(trace_id=trace.id, status="succeeded", output="ok")
    with pytest.raises(TraceError, match="trace is already succeeded"):
        trace_cancel(trace_id=trace.id)
    trace.refresh_from_db()
    assert (trace.status, trace.cancel_requested) == ("succeeded", False)


def test_the_reaper_fails_a_running_trace_whose_worker_went_silent_and_keeps_its_steps():
    lost = running("lost", worker="host-dead:99")
    step_record(trace_id=lost.id, kind="model_call")
    step_record(trace_id=lost.id, kind="tool_call", name="sleep")
    Trace.objects.filter(pk=lost.id).update(heartbeat_at=timezone.now() - timedelta(seconds=120))
    alive = running("alive")
    queued = trace_create(name="queued", input="go")

    reaped = traces_reap_stale(stale_after=30)

    assert [t.id for t in reaped] == [lost.id]
    lost.refresh_from_db()
    assert lost.status == Trace.Status.FAILED
    assert lost.error.startswith("worker lost: host-dead:99 sent no heartbeat since ")
    assert "(30 s limit); the run was abandoned with 2 saved steps" in lost.error
    assert list(Step.objects.filter(trace=lost).values_list("name", flat=True)) == ["", "sleep"]
    alive.refresh_from_db()
    queued.refresh_from_db()
    assert alive.status == Trace.Status.RUNNING
    assert queued.status == Trace.Status.QUEUED
    assert traces_reap_stale(stale_after=30) == []


def test_the_reaper_uses_the_configured_limit(settings):
    settings.TOOLTRAIL_STALE_AFTER_SECONDS = 5
    trace = running()
    Trace.objects.filter(pk=trace.id).update(heartbeat_at=timezone.now() - timedelta(seconds=10))
    assert [t.id for t in traces_reap_stale()] == [trace.id]


def test_a_heartbeat_keeps_a_running_trace_from_being_reaped():
    trace = running()
    Trace.objects.filter(pk=trace.id).update(heartbeat_at=timezone.now() - timedelta(seconds=120))
    trace_heartbeat(trace_id=trace.id)
    assert traces_reap_stale(stale_after=30) == []
    trace.refresh_from_db()
    assert trace.status == Trace.Status.RUNNING
