"""Writes of traces and steps: the single record-and-broadcast service.

Every step goes through ``step_record``: save, commit, then broadcast to the trace's
channel group. A step is durable before anyone sees it.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import BooleanField, DateTimeField, ExpressionWrapper, F, Q, Value
from django.db.models.functions import Now
from django.utils import timezone

from .events import event_send, step_event, trace_event
from .limits import text_cap, text_clean, text_size, value_cap
from .models import Step, StepBlob, Trace

logger = logging.getLogger(__name__)


class TraceError(Exception):
    """A trace cannot take this change (finished, unknown parent, …)."""


def _trace_broadcast(trace: Trace, *, created: bool = False) -> None:
    """Tell the trace page and the trace list that the trace changed."""
    event_send(trace_event(trace=trace, created=created))


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
            .only(
                "id",
                "step_count",
                "status",
                "prompt_tokens",
                "completion_tokens",
                "started_at",
                "model_calls",
                "tool_calls",
                "error_count",
            )
            .get(pk=trace_id)
        )
        if trace.is_finished:
            # The run ended elsewhere (cancelled, or reaped as lost): its record is closed.
            raise TraceError(f"trace {trace.id} is already {trace.status}; it takes no more steps")
        if parent is not None:
            if parent.trace_id != trace.id:
                raise TraceError("a step's parent must belong to the same trace")
            meta["parent_seq"] = parent.seq
            parent_depth = (
                parent.metadata.get("depth") if isinstance(parent.metadata, dict) else None
            )
            meta["depth"] = (parent_depth if isinstance(parent_depth, int) else 0) + 1
        else:
            meta["depth"] = 0
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
        counters = {}
        if kind == Step.Kind.MODEL_CALL:
            counters["model_calls"] = F("model_calls") + 1
        elif kind == Step.Kind.TOOL_CALL:
            counters["tool_calls"] = F("tool_calls") + 1
        if status == Step.Status.ERROR:
            counters["error_count"] = F("error_count") + 1
        if blobs:
            _blobs_save(step, blobs)
        Trace.objects.filter(pk=trace.id).update(
            **counters,
            step_count=seq,
            prompt_tokens=F("prompt_tokens") + prompt_tokens,
            completion_tokens=F("completion_tokens") + completion_tokens,
            heartbeat_at=Now(),
        )
    # The event is built after the lock is released (on SQLite, the database-wide
    # write lock); on_commit still waits for a caller's outer transaction, if any.
    totals = {
        "step_count": seq,
        "prompt_tokens": trace.prompt_tokens + prompt_tokens,
        "completion_tokens": trace.completion_tokens + completion_tokens,
        "model_calls": trace.model_calls + (kind == Step.Kind.MODEL_CALL),
        "tool_calls": trace.tool_calls + (kind == Step.Kind.TOOL_CALL),
        "error_count": trace.error_count + (status == Step.Status.ERROR),
        "duration_ms": (now - trace.started_at).total_seconds() * 1000
        if trace.started_at
        else None,
    }
    event_send(step_event(step=step, totals=totals))
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
        _trace_broadcast(trace)  # the badge says "Cancelling…" until the run stops
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


def call_started(
    *,
    trace_id: uuid.UUID | str,
    kind: str,
    name: str,
    parent_seq: int | None = None,
    call_id: str = "",
) -> str:
    """A model call (``kind="model"``) or tool call (``kind="tool"``) starts: show it at
    once as running. Nothing is written to the database; the call is kept in Redis until
    ``call_ended`` (or its TTL) so a page that reconnects mid-call still shows it.
    Returns the call's id, to pass to ``call_ended``. Never raises: a failed broadcast
    must not fail the run."""
    from .calls import calls_store
    from .events import CALL_STARTED, call_event

    if kind not in ("model", "tool"):
        raise TraceError(f"unknown call kind {kind!r}")
    call = {
        "id": call_id or uuid.uuid4().hex,
        "kind": kind,
        "name": name[:200],
        "parent_seq": parent_seq,
        "started_at": time.time(),
    }
    try:
        calls_store(trace_id=trace_id, call=call)
    except Exception:  # noqa: BLE001 - live display is best effort; the steps are the record
        logger.exception("could not keep call %s of trace %s", call["id"], trace_id)
    event_send(call_event(type=CALL_STARTED, trace_id=trace_id, call=call))
    return call["id"]


def call_ended(*, trace_id: uuid.UUID | str, call_id: str) -> None:
    """The call ``call_id`` ended (its step, if any, is saved by now)."""
    from .calls import calls_forget
    from .events import CALL_ENDED, call_event

    try:
        calls_forget(trace_id=trace_id, call_id=call_id)
    except Exception:  # noqa: BLE001 - see call_started
        logger.exception("could not forget call %s of trace %s", call_id, trace_id)
    event_send(call_event(type=CALL_ENDED, trace_id=trace_id, call={"id": call_id}))


TAG_MAX = 64


def _tag_check(tag: str) -> str:
    tag = (tag or "").strip()
    if not tag:
        raise TraceError("give a tag name")
    if len(tag) > TAG_MAX:
        raise TraceError(f"a tag is at most {TAG_MAX} characters")
    return tag


def traces_tag(*, trace_ids: list, tag: str, remove: bool = False) -> int:
    """Add (or remove) ``tag`` on each of the traces. Returns how many changed."""
    from .models import TraceTag

    tag = _tag_check(tag)
    ids = list(Trace.objects.filter(pk__in=trace_ids).values_list("id", flat=True))
    with transaction.atomic():
        if remove:
            return TraceTag.objects.filter(trace_id__in=ids, name=tag).delete()[0]
        existing = set(
            TraceTag.objects.filter(trace_id__in=ids, name=tag).values_list("trace_id", flat=True)
        )
        new = [TraceTag(trace_id=i, name=tag) for i in ids if i not in existing]
        TraceTag.objects.bulk_create(new)
        return len(new)


def traces_delete(*, trace_ids: list) -> int:
    """Delete finished traces with their steps. Running or queued traces are kept (a
    worker is writing them); returns how many were deleted."""
    with transaction.atomic():
        qs = Trace.objects.filter(pk__in=trace_ids, status__in=Trace.FINISHED)
        count = qs.count()
        qs.delete()
    return count


def saved_filter_save(*, user, name: str, query: str):
    """Save (or replace) the user's named filter of the trace list."""
    from .models import SavedFilter

    name = (name or "").strip()
    if not name or len(name) > 100:
        raise TraceError("a saved filter needs a name of 1 to 100 characters")
    if len(query) > 2000:
        raise TraceError("that filter is too long to save")
    saved, _ = SavedFilter.objects.update_or_create(user=user, name=name, defaults={"query": query})
    return saved


def saved_filter_delete(*, user, filter_id: int) -> None:
    from .models import SavedFilter

    SavedFilter.objects.filter(user=user, pk=filter_id).delete()


def trace_fork_create(
    *,
    source: Trace,
    fork_seq: int,
    input: str,
    agent_slug: str = "",
    created_by=None,
    metadata: dict[str, Any] | None = None,
) -> Trace:
    """A new queued trace that re-runs ``source`` from its step ``fork_seq``: it starts
    with copies of the steps before that one (same numbers, same parents, same totals)
    and records where it came from. The caller enqueues its run."""
    if not Step.objects.filter(trace_id=source.id, seq=fork_seq).exists():
        raise TraceError(f"trace {source.id} has no step #{fork_seq}")
    with transaction.atomic():
        trace = Trace.objects.create(
            name=source.name,
            input=input,
            agent_slug=agent_slug or source.agent_slug,
            source=source.source,
            created_by=created_by,
            metadata=metadata or {},
            forked_from=source,
            fork_seq=fork_seq,
        )
        copies: dict[int, Step] = {}
        for old in Step.objects.filter(trace_id=source.id, seq__lt=fork_seq).order_by("seq"):
            old_id, old_parent = old.id, old.parent_id
            old.pk = None
            old.trace = trace
            old.parent = copies.get(old_parent)
            copies[old_id] = old
            # One by one: each copy needs its new id before its children point at it.
            old.save(force_insert=True)
        kept = list(copies.values())
        Trace.objects.filter(pk=trace.id).update(
            step_count=len(kept),
            prompt_tokens=sum(s.prompt_tokens for s in kept),
            completion_tokens=sum(s.completion_tokens for s in kept),
            model_calls=sum(s.kind == Step.Kind.MODEL_CALL for s in kept),
            tool_calls=sum(s.kind == Step.Kind.TOOL_CALL for s in kept),
            error_count=sum(s.status == Step.Status.ERROR for s in kept),
        )
        trace.refresh_from_db()
        _trace_broadcast(trace, created=True)
    return trace
