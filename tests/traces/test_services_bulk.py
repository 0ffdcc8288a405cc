"""steps_record_bulk: the batch sibling of step_record follows the same rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from traces.ingest.mapping import StepRecord
from traces.models import Trace
from traces.services import (
    TraceError,
    step_record,
    steps_record_bulk,
    trace_create,
    trace_finish,
    trace_start,
)

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 12, 1, tzinfo=UTC)


def record(span_id: str, parent: str = "", *, kind: str = "tool_call", at: int = 0, **kw):
    return StepRecord(
        otel_trace_id="",
        span_id=span_id,
        parent_span_id=parent,
        kind=kind,
        name=kw.pop("name", span_id),
        started_at=T0 + timedelta(seconds=at),
        ended_at=T0 + timedelta(seconds=at + 1),
        **kw,
    )


def running() -> Trace:
    trace = trace_create(name="bulk", input="go")
    return trace_start(trace_id=trace.id, worker="host:1")


def test_numbers_continue_after_step_record_and_totals_move():
    trace = running()
    step_record(trace_id=trace.id, kind="model_call", name="first", prompt_tokens=5)
    steps = steps_record_bulk(
        trace_id=trace.id,
        records=[
            record("b" * 16, "a" * 16, at=2, prompt_tokens=3, completion_tokens=1),
            record("a" * 16, kind="agent", at=1),
        ],
    )
    trace.refresh_from_db()
    assert [(s.seq, s.name) for s in steps] == [(2, "a" * 16), (3, "b" * 16)]
    assert steps[1].parent == steps[0]
    assert steps[1].metadata["parent_seq"] == 2
    assert (trace.step_count, trace.prompt_tokens, trace.completion_tokens) == (3, 8, 1)


def test_a_finished_trace_or_an_unknown_kind_takes_nothing():
    trace = running()
    with pytest.raises(TraceError, match="unknown step kind"):
        steps_record_bulk(trace_id=trace.id, records=[record("c" * 16, kind="nope")])
    trace_finish(trace_id=trace.id, status=Trace.Status.SUCCEEDED)
    with pytest.raises(TraceError, match="no more steps"):
        steps_record_bulk(trace_id=trace.id, records=[record("c" * 16)])
    assert not trace.steps.exists()


def test_a_parent_arriving_later_adopts_its_waiting_children_and_repeats_are_skipped():
    trace = running()
    (child,) = steps_record_bulk(trace_id=trace.id, records=[record("c" * 16, "p" * 16, at=2)])
    assert child.parent is None
    (parent,) = steps_record_bulk(
        trace_id=trace.id, records=[record("p" * 16, at=1), record("c" * 16, "p" * 16, at=2)]
    )
    child.refresh_from_db()
    assert child.parent == parent
    assert child.metadata["parent_seq"] == parent.seq == 2
    assert trace.steps.count() == 2


def test_a_subtree_that_came_first_moves_down_whole_when_its_root_arrives():
    trace = running()
    child, grandchild = steps_record_bulk(
        trace_id=trace.id,
        records=[record("c" * 16, "p" * 16, at=2), record("g" * 16, "c" * 16, at=3)],
    )
    assert (child.metadata["depth"], grandchild.metadata["depth"]) == (0, 1)
    (root,) = steps_record_bulk(trace_id=trace.id, records=[record("p" * 16, at=1)])
    child.refresh_from_db()
    grandchild.refresh_from_db()
    assert child.parent == root and grandchild.parent == child
    assert (root.metadata["depth"], child.metadata["depth"], grandchild.metadata["depth"]) == (
        0,
        1,
        2,
    )


def test_big_inputs_are_capped_as_step_record_caps_them(settings):
    from traces.models import StepBlob

    settings.TOOLTRAIL_STEP_FIELD_MAX_BYTES = 1000
    trace = running()
    (step,) = steps_record_bulk(
        trace_id=trace.id, records=[record("d" * 16, input={"text": "x" * 5000}, output="ok")]
    )
    step.refresh_from_db()
    assert step.input["truncated"].startswith("truncated: ")
    assert step.output == "ok"
    assert "input" in step.metadata["truncated"]
    blob = StepBlob.objects.get(step=step, field="input")
    assert blob.complete and '"x' in blob.text and len(blob.text) > 5000
