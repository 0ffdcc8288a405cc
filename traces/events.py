"""Events: what a broadcast says happened, as data. The one place they are built.

Every broadcast is one of the shapes below (documented in ``docs/events.md``); it is
sent to channel groups after the commit and each consumer renders what its own client
needs from it. Adding an event type is: a builder here, a line in ``ROUTES`` (which
groups hear it) and, for the pages, a renderer in ``traces.rendering.EVENT_HTML``.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from django.db import transaction

from .broadcast import TRACE_LIST_GROUP, group_send_now, trace_group
from .models import Step, Trace
from .serializers import step_payload, trace_payload

STEP = "step"
TRACE = "trace"
CALL_STARTED = "call.started"
CALL_ENDED = "call.ended"
LABEL = "label"

# Which groups hear each event type, from the event itself.
ROUTES: dict[str, Any] = {
    STEP: lambda event: [trace_group(event["trace"])],
    TRACE: lambda event: [trace_group(event["trace"]), TRACE_LIST_GROUP],
    CALL_STARTED: lambda event: [trace_group(event["trace"])],
    CALL_ENDED: lambda event: [trace_group(event["trace"])],
    LABEL: lambda event: [trace_group(event["trace"])],
}


def step_event(*, step: Step, totals: dict[str, Any], ended_call: str = "") -> dict[str, Any]:
    """A step was saved. ``totals`` are the trace's running totals with it; ``ended_call``
    the id of the call in progress that this step records (consumers send its
    ``call.ended`` with the step, in the same frame: one broadcast instead of two)."""
    event = {
        "type": STEP,
        "trace": str(step.trace_id),
        "seq": step.seq,
        "step": step_payload(step),
        "totals": totals,
    }
    if ended_call:
        event["ended_call"] = ended_call
    return event


def trace_event(*, trace: Trace, created: bool = False) -> dict[str, Any]:
    """A trace was created or changed status. ``data`` is informative; consumers that
    render for a page read the trace afresh by its id."""
    return {
        "type": TRACE,
        "trace": str(trace.id),
        "created": created,
        "status": trace.status,
        "step_count": trace.step_count,
        "data": trace_payload(trace),
    }


def call_event(
    *,
    type: str,
    trace_id: uuid.UUID | str,
    call: dict[str, Any],
) -> dict[str, Any]:
    """A model or tool call started or ended (transient: no step is saved for it)."""
    return {"type": type, "trace": str(trace_id), "call": call}


# Transient events (calls in progress) wait this long at most for Redis: a run must
# not slow down, or outlive a shutdown, for a display that is best effort anyway.
TRANSIENT_SEND_TIMEOUT = 1.0


def label_event(*, trace_id: uuid.UUID | str, step_seq: int | None) -> dict[str, Any]:
    """The labels of a step (or of the trace, ``step_seq`` None) changed. Consumers read
    the labels as committed (``traces.annotation_services.labels_frames``)."""
    return {"type": LABEL, "trace": str(trace_id), "step_seq": step_seq}


def event_send(event: dict[str, Any]) -> None:
    """Broadcast ``event`` to its groups once the surrounding transaction commits.

    ``committed_at`` is stamped in the on-commit callback: the moment the change became
    durable (the latency benchmark measures from there to the client)."""
    timeout = TRANSIENT_SEND_TIMEOUT if event["type"] in (CALL_STARTED, CALL_ENDED) else None
    if event["type"] not in ROUTES:
        raise ValueError(f"unknown event type {event['type']!r}")

    def send() -> None:
        event["committed_at"] = time.time()
        for group in ROUTES[event["type"]](event):
            if timeout is None:
                group_send_now(group, event)
            else:
                group_send_now(group, event, timeout=timeout)

    transaction.on_commit(send)
