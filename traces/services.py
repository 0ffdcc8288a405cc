"""Writes of traces and steps: the single record-and-broadcast service.

Every step goes through ``step_record``: save, commit, then broadcast to the trace's
channel group. A step is durable before anyone sees it.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import BooleanField, DateTimeField, ExpressionWrapper, F, Q, Value
from django.db.models.functions import Now
from django.template.loader import render_to_string
from django.utils import timezone

from .broadcast import TRACE_LIST_GROUP, group_send_on_commit, trace_group
from .limits import text_cap, text_clean, text_size, value_cap
from .models import Step, StepBlob, Trace
from .rendering import step_live_html, totals_oob_html


class TraceError(Exception):
    """A trace cannot take this change (finished, unknown parent, …)."""


def step_payload(step: Step) -> dict[str, Any]:
    """The JSON form of a step, as the API and JSON websocket clients get it."""
    return {
        "id": step.id,
        "trace_id": str(step.trace_id),
        "seq": step.seq,
        "parent_seq": step.metadata.get("parent_seq") if isinstance(step.metadata, dict) else None,
        "kind": step.kind,
        "name": step.name,
        "status": step.status,
        "input": step.input,
        "output": step.output,
        "error": step.error,
        "tool_call_id": step.tool_call_id,
        "started_at": step.started_at.isoformat() if step.started_at else None,
        "ended_at": step.ended_at.isoformat() if step.ended_at else None,
        "duration_ms": step.duration_ms,
        "prompt_tokens": step.prompt_tokens,
        "completion_tokens": step.completion_tokens,
    }


def trace_payload(trace: Trace) -> dict[str, Any]:
    return {
        "id": str(trace.id),
        "name": trace.name,
        "agent_slug": trace.agent_slug,
        "status": trace.status,
        "input": trace.input,
        "output": trace.output,
        "error": trace.error,
        "created_at": trace.created_at.isoformat() if trace.created_at else None,
        "started_at": trace.started_at.isoformat() if trace.started_at else None,
        "ended_at": trace.ended_at.isoformat() if trace.ended_at else None,
        "duration_seconds": trace.duration_seconds,
        "step_count": trace.step_count,
        "prompt_tokens": trace.prompt_tokens,
        "completion_tokens": trace.completion_tokens,
    }


def _trace_broadcast(trace: Trace, *, created: bool = False) -> None:
    """Tell the trace page and the trace list that the trace changed."""
    message = {
        "type": "trace.updated",
        "trace": trace_payload(trace),
        "html": render_to_string("traces/_trace_status_oob.html", {"trace": trace}),
    }
    group_send_on_commit(trace_group(trace.id), message)
    group_send_on_commit(
        TRACE_LIST_GROUP,
        {
            "type": "trace.listed" if created else "trace.updated",
            "trace": trace_payload(trace),
            "html": render_to_string(
                "traces/_trace_row_oob.html", {"trace": trace, "created": created}
            ),
        },
    )


def trace_create(
    *,
    name: str,
    input: str = "",
    agent_slug: str = "",
    source: str = Trace.Source.RUNNER,
    created_by=None,
    metadata: dict[str, Any] | None = None,
) -> Trace:
    with transaction.atomic():
        trace = Trace.objects.create(
            name=text_clean(name)[:200],
            input=text_clean(input),
            agent_slug=agent_slug,
            source=source,
            created_by=created_by,
            metadata=metadata or {},
        )
        _trace_broadcast(trace, created=True)
    return trace


def db_now_plus(seconds: float) -> ExpressionWrapper:
    """The database clock plus (or minus) ``seconds``: heartbeats, deadlines and the
    reaper all read one clock, so workers with skewed clocks never reap live runs."""
    return ExpressionWrapper(
        Now() + Value(timedelta(seconds=seconds)), output_field=DateTimeField()
    )


def trace_start(
    *, trace_id: uuid.UUID | str, worker: str = "", deadline_seconds: float | None = None
) -> Trace:
    """Queued → running, with a deadline ``deadline_seconds`` from now (database clock).
    Raises TraceError if the trace is not queued (a redelivered task for a trace that
    already ran, or one cancelled before it started)."""
    seconds = (
        settings.TOOLTRAIL_RUN_DEADLINE_SECONDS if deadline_seconds is None else deadline_seconds
    )
    with transaction.atomic():
        trace = Trace.objects.select_for_update().get(pk=trace_id)
        if trace.status != Trace.Status.QUEUED:
            raise TraceError(f"trace {trace.id} is {trace.status}, not queued")
        Trace.objects.filter(pk=trace.id).update(
            status=Trace.Status.RUNNING,
            started_at=Now(),
            heartbeat_at=Now(),
            deadline_at=db_now_plus(seconds),
            worker=worker[:200],
        )
        trace.refresh_from_db()
        _trace_broadcast(trace)
    return trace


def step_record(
    *,
    trace_id: uuid.UUID | str,
    kind: str,
    name: str = "",
    input: Any = None,
    output: Any = None,
    error: str = "",
    parent: Step | None = None,
    tool_call_id: str = "",
    started_at: datetime | None = None,
    ended_at: datetime | None = None,
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
    metadata: dict[str, Any] | None = None,
) -> Step:
    """Append one complete step to a trace: save, commit, then broadcast.

    The sequence number is taken under the trace's row lock, so concurrent writers
    never share one. The trace's step count, token totals and heartbeat move with it.
    Input, output and error are capped (traces.limits): the row keeps a preview with a
    "truncated: N bytes" marker and the whole value goes to a StepBlob.
    """
    if kind not in Step.Kind.values:
        raise TraceError(f"unknown step kind {kind!r}")
    status = Step.Status.ERROR if (kind == Step.Kind.ERROR or error) else Step.Status.OK
    now = timezone.now()
    meta = dict(metadata or {})
    # Sized outside the lock: encoding a big value must not hold up other writers.
    blobs: dict[str, str] = {}
    capped_input, capped_output = value_cap(input), value_cap(output)
    input, output = capped_input.value, capped_output.value
    error, full_error, cut_error = text_cap(str(error or ""))
    for field, full, cut in (
        ("input", capped_input.full_text, capped_input.cut_bytes),
        ("output", capped_output.full_text, capped_output.cut_bytes),
        ("error", full_error, cut_error),
    ):
        if full is not None:
            blobs[field] = full
            meta.setdefault("truncated", {})[field] = cut
    with transaction.atomic():
        trace = (
            Trace.objects.select_for_update()
            .only("id", "step_count", "status", "prompt_tokens", "completion_tokens", "started_at")
            .get(pk=trace_id)
        )
        if trace.is_finished:
            # The run ended elsewhere (cancelled, or reaped as lost): its record is closed.
            raise TraceError(f"trace {trace.id} is already {trace.status}; it takes no more steps")
        if parent is not None:
            if parent.trace_id != trace.id:
                raise TraceError("a step's parent must belong to the same trace")
            meta["parent_seq"] = parent.seq
        seq = trace.step_count + 1
        step = Step.objects.create(
            trace_id=trace.id,
            seq=seq,
            parent=parent,
            kind=kind,
            name=text_clean(str(name or ""))[:200],
            input=input,
            output=output,
            error=error,
            status=status,
            tool_call_id=text_clean(str(tool_call_id or ""))[:100],
            started_at=started_at or now,
            ended_at=ended_at or now,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            metadata=meta,
        )
        if blobs:
            _blobs_save(step, blobs)
        Trace.objects.filter(pk=trace.id).update(
            step_count=seq,
            prompt_tokens=F("prompt_tokens") + prompt_tokens,
            completion_tokens=F("completion_tokens") + completion_tokens,
            heartbeat_at=Now(),
        )
    # The message is built after the lock is released (on SQLite, the database-wide
    # write lock); on_commit still waits for a caller's outer transaction, if any.
    payload = step_payload(step)
    # Both forms are finished text: every listening socket sends them as they are,
    # rather than each decoding a nested payload and encoding its own JSON.
    html = step_live_html(step) + totals_oob_html(
        step_count=seq,
        prompt_tokens=trace.prompt_tokens + prompt_tokens,
        completion_tokens=trace.completion_tokens + completion_tokens,
        duration_ms=(now - trace.started_at).total_seconds() * 1000 if trace.started_at else None,
    )
    message = {"type": "step.created", "seq": seq, "html": html}

    def stamp() -> None:
        # Stamped in the on-commit callback, so it is the moment the step became
        # durable; the latency benchmark measures from here to the browser.
        message["committed_at"] = time.time()
        message["json"] = json.dumps(
            {"type": "step", "step": payload, "committed_at": message["committed_at"]},
            default=str,
        )

    transaction.on_commit(stamp)
    group_send_on_commit(trace_group(trace.id), message)
    return step


def _blobs_save(step: Step, blobs: dict[str, str]) -> None:
    limit = settings.TOOLTRAIL_STEP_BLOB_MAX_BYTES
    StepBlob.objects.bulk_create(
        StepBlob(
            step=step,
            field=field,
            text=text.encode("utf-8", "surrogatepass")[:limit].decode("utf-8", "ignore"),
            size=text_size(text),
            complete=text_size(text) <= limit,
        )
        for field, text in blobs.items()
    )


def trace_heartbeat(*, trace_id: uuid.UUID | str) -> None:
    Trace.objects.filter(pk=trace_id, status=Trace.Status.RUNNING).update(heartbeat_at=Now())


def trace_finish(
    *,
    trace_id: uuid.UUID | str,
    status: str,
    output: str = "",
    error: str = "",
) -> Trace:
    """Running (or queued) → a finished status. A trace already finished keeps its
    first ending: finishing twice is a no-op that returns it unchanged."""
    if status not in Trace.FINISHED:
        raise TraceError(f"{status!r} is not a finished status")
    with transaction.atomic():
        trace = Trace.objects.select_for_update().get(pk=trace_id)
        if trace.is_finished:
            return trace
        trace.status = status
        # The whole answer is in the final step's blob; the trace row keeps a capped copy.
        trace.output = text_cap(output or "")[0]
        trace.error = text_cap(error or "")[0]
        trace.ended_at = timezone.now()
        if trace.started_at is None:
            trace.started_at = trace.ended_at
        trace.save(update_fields=["status", "output", "error", "ended_at", "started_at"])
        _trace_broadcast(trace)
    return trace


def trace_cancel(*, trace_id: uuid.UUID | str) -> Trace:
    """Ask a run to stop. A queued trace ends at once; a running one is flagged and its
    worker stops before its next model or tool call."""
    with transaction.atomic():
        trace = Trace.objects.select_for_update().get(pk=trace_id)
        if trace.is_finished:
            raise TraceError(f"trace is already {trace.status}")
        trace.cancel_requested = True
        trace.save(update_fields=["cancel_requested"])
        # Decided under the same lock: a worker cannot start it in between.
        if trace.status == Trace.Status.QUEUED:
            return trace_finish(
                trace_id=trace.id,
                status=Trace.Status.CANCELLED,
                error="cancelled before it started",
            )
    return trace


def traces_queued_lost(*, after: float) -> list[uuid.UUID]:
    """Runner traces still queued ``after`` seconds after they were (last) enqueued."""
    cutoff = db_now_plus(-after)
    return list(
        Trace.objects.filter(status=Trace.Status.QUEUED, source=Trace.Source.RUNNER)
        .filter(Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at=None, created_at__lt=cutoff))
        .values_list("id", flat=True)
    )


def trace_requeue_note(*, trace_id: uuid.UUID | str) -> int | None:
    """Note that a queued trace's task is sent again (its heartbeat restarts the wait);
    returns how many times it was, or None if it is no longer queued."""
    with transaction.atomic():
        trace = Trace.objects.select_for_update().filter(pk=trace_id).first()
        if trace is None or trace.status != Trace.Status.QUEUED:
            return None
        metadata = trace.metadata if isinstance(trace.metadata, dict) else {}
        metadata["requeued"] = int(metadata.get("requeued") or 0) + 1
        Trace.objects.filter(pk=trace.id).update(metadata=metadata, heartbeat_at=Now())
    return metadata["requeued"]


def traces_reap_stale(*, stale_after: float | None = None) -> list[Trace]:
    """End every running trace whose worker stopped sending heartbeats (killed, lost
    power, OOM), or that is still running ``stale_after`` seconds past its deadline
    (stuck in one call: its heartbeat proves the process lives, not that it progresses):
    status failed, with the reason. Saved steps stay as they are. Times are compared on
    the database's clock."""
    seconds = settings.TOOLTRAIL_STALE_AFTER_SECONDS if stale_after is None else stale_after
    cutoff = db_now_plus(-seconds)
    reaped = []
    candidates = Trace.objects.filter(status=Trace.Status.RUNNING).filter(
        Q(heartbeat_at__lt=cutoff) | Q(deadline_at__lt=cutoff)
    )
    for trace_id in candidates.values_list("id", flat=True):
        with transaction.atomic():
            trace = (
                Trace.objects.select_for_update()
                .filter(pk=trace_id, status=Trace.Status.RUNNING)
                .annotate(
                    stale=ExpressionWrapper(
                        Q(heartbeat_at__lt=cutoff), output_field=BooleanField()
                    ),
                    overdue=ExpressionWrapper(
                        Q(deadline_at__lt=cutoff), output_field=BooleanField()
                    ),
                )
                .first()
            )
            if trace is None or not (trace.stale or trace.overdue):
                continue  # it finished, or beat again, since the list was read
            worker = trace.worker or "unknown worker"
            if trace.stale:
                error = (
                    f"worker lost: {worker} sent no heartbeat since "
                    f"{trace.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC ({seconds:g} s limit); "
                    f"the run was abandoned with {trace.step_count} saved steps"
                )
            else:
                error = (
                    f"run stuck: still running on {worker} {seconds:g} s after its deadline "
                    f"({trace.deadline_at:%Y-%m-%d %H:%M:%S} UTC); the run was abandoned "
                    f"with {trace.step_count} saved steps"
                )
            reaped.append(trace_finish(trace_id=trace_id, status=Trace.Status.FAILED, error=error))
    return reaped
