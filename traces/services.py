"""Writes of traces and steps: the single record-and-broadcast service.

Every step goes through ``step_record``: save, commit, then broadcast to the trace's
channel group. A step is durable before anyone sees it.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import BooleanField, DateTimeField, ExpressionWrapper, F, Q, Value
from django.db.models.functions import Now
from django.utils import timezone
from django.utils.text import slugify

from .events import event_send, step_event, trace_event
from .ingest.mapping import StepRecord
from .limits import text_cap, text_clean, text_size, value_cap
from .models import Step, StepBlob, Trace
from .rollup_services import rollup_invalidate

logger = logging.getLogger(__name__)

_STEP_KINDS = frozenset(Step.Kind.values)


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


def _step_capped(
    *, input: Any, output: Any, error: str, metadata: dict[str, Any] | None
) -> tuple[Any, Any, str, dict[str, Any], dict[str, str]]:
    """Input, output and error as a step row keeps them (traces.limits): each over the
    limit becomes a preview with a "truncated: N bytes" marker, named in
    ``metadata["truncated"]``, and its whole text is returned in ``blobs`` for a
    StepBlob. Called outside the trace's lock: encoding a big value must not hold up
    other writers. Returns (input, output, error, metadata, blobs)."""
    meta = dict(metadata or {})
    blobs: dict[str, str] = {}
    capped_input, capped_output = value_cap(input), value_cap(output)
    error, full_error, cut_error = text_cap(str(error or ""))
    for field, full, cut in (
        ("input", capped_input.full_text, capped_input.cut_bytes),
        ("output", capped_output.full_text, capped_output.cut_bytes),
        ("error", full_error, cut_error),
    ):
        if full is not None:
            blobs[field] = full
            meta.setdefault("truncated", {})[field] = cut
    return capped_input.value, capped_output.value, error, meta, blobs


def _step_build(
    *,
    trace_id: uuid.UUID,
    seq: int,
    kind: str,
    name: str = "",
    input: Any = None,
    output: Any = None,
    error: str = "",
    parent: Step | None = None,
    tool_call_id: str = "",
    span_id: str = "",
    parent_span_id: str = "",
    started_at: datetime | None = None,
    ended_at: datetime | None = None,
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
    metadata: dict[str, Any] | None = None,
    now: datetime,
) -> Step:
    """The unsaved step row: the one place a step's fields are checked and shaped,
    for ``step_record``, ``steps_record_bulk`` and ``trace_import`` alike (input,
    output and error already capped by ``_step_capped``)."""
    if kind not in _STEP_KINDS:
        raise TraceError(f"unknown step kind {kind!r}")
    meta = dict(metadata or {})
    if parent is not None:
        if parent.trace_id != trace_id:
            raise TraceError("a step's parent must belong to the same trace")
        meta["parent_seq"] = parent.seq
        meta["depth"] = _depth_under(parent)
    elif not isinstance(meta.get("parent_seq"), int):
        meta["depth"] = 0
    return Step(
        trace_id=trace_id,
        seq=seq,
        parent=parent,
        kind=kind,
        name=text_clean(str(name or ""))[:200],
        input=input,
        output=output,
        error=error,
        status=Step.Status.ERROR if (kind == Step.Kind.ERROR or error) else Step.Status.OK,
        tool_call_id=text_clean(str(tool_call_id or ""))[:100],
        span_id=span_id[:16],
        parent_span_id=parent_span_id[:16],
        started_at=started_at or now,
        ended_at=ended_at or now,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        metadata=meta,
    )


def _depths_below(adopted: list[Step]) -> None:
    """The stored depths of what hangs below steps that just moved under a parent: one
    query a level (a subtree that arrived before its root is rarely deep)."""
    level = {step.id: step for step in adopted}
    while level:
        below = list(
            Step.objects.filter(parent_id__in=list(level)).only("id", "parent_id", "metadata")
        )
        for step in below:
            if not isinstance(step.metadata, dict):
                step.metadata = {}
            step.metadata["depth"] = _depth_under(level[step.parent_id])
        if below:
            Step.objects.bulk_update(below, ["metadata"])
        level = {step.id: step for step in below}


def _depth_under(parent: Step) -> int:
    depth = parent.metadata.get("depth") if isinstance(parent.metadata, dict) else None
    return (depth if isinstance(depth, int) else 0) + 1


def _counters_for(steps: Sequence[Step]) -> dict[str, Any]:
    """The trace's counters moved by ``steps`` (an update's keyword arguments)."""
    counters: dict[str, Any] = {}
    for field, count in (
        ("model_calls", sum(s.kind == Step.Kind.MODEL_CALL for s in steps)),
        ("tool_calls", sum(s.kind == Step.Kind.TOOL_CALL for s in steps)),
        ("error_count", sum(s.status == Step.Status.ERROR for s in steps)),
    ):
        if count:
            counters[field] = F(field) + count
    return counters


def _step_message(
    step: Step,
    *,
    trace: Trace,
    now,
    steps: Sequence[Step] | None = None,
    ended_call: str = "",
):
    """The ``step`` event for a step that ends a write (one step, or the last of a
    batch: a client one step behind appends it, one further behind fills the gap from
    the database by its cursor). ``trace`` is as locked before the write; ``steps``
    all the steps the write saved (default: just ``step``)."""
    written = list(steps) if steps is not None else [step]
    totals = {
        "step_count": step.seq,
        "prompt_tokens": trace.prompt_tokens + sum(s.prompt_tokens for s in written),
        "completion_tokens": trace.completion_tokens + sum(s.completion_tokens for s in written),
        "model_calls": trace.model_calls + sum(s.kind == Step.Kind.MODEL_CALL for s in written),
        "tool_calls": trace.tool_calls + sum(s.kind == Step.Kind.TOOL_CALL for s in written),
        "error_count": trace.error_count + sum(s.status == Step.Status.ERROR for s in written),
        "duration_ms": (now - trace.started_at).total_seconds() * 1000
        if trace.started_at
        else None,
    }
    event_send(step_event(step=step, totals=totals, ended_call=ended_call))


def _trace_lock_for_steps(trace_id: uuid.UUID | str) -> Trace:
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
    ended_call: str = "",
) -> Step:
    """Append one complete step to a trace: save, commit, then broadcast.

    ``ended_call``: the id of the call in progress (``call_started``) that this step
    records; its end is announced with the step (see ``call_ended(announce=False)``).

    The sequence number is taken under the trace's row lock, so concurrent writers
    never share one. The trace's step count, token totals and heartbeat move with it.
    Input, output and error are capped (traces.limits): the row keeps a preview with a
    "truncated: N bytes" marker and the whole value goes to a StepBlob.
    """
    if kind not in _STEP_KINDS:
        raise TraceError(f"unknown step kind {kind!r}")
    now = timezone.now()
    input, output, error, metadata, blobs = _step_capped(
        input=input, output=output, error=error, metadata=metadata
    )
    with transaction.atomic():
        trace = _trace_lock_for_steps(trace_id)
        seq = trace.step_count + 1
        step = _step_build(
            trace_id=trace.id,
            seq=seq,
            kind=kind,
            name=name,
            input=input,
            output=output,
            error=error,
            parent=parent,
            tool_call_id=tool_call_id,
            started_at=started_at,
            ended_at=ended_at,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            metadata=metadata,
            now=now,
        )
        step.save(force_insert=True)
        counters = _counters_for([step])
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
    _step_message(step, trace=trace, now=now, ended_call=ended_call)
    return step


def _blobs_save(step: Step, blobs: dict[str, str]) -> None:
    _blobs_save_many([(step, blobs)])


def _blobs_save_many(pairs: Sequence[tuple[Step, dict[str, str]]]) -> None:
    """The whole values of capped fields, for saved steps, in one insert."""
    limit = settings.TOOLTRAIL_STEP_BLOB_MAX_BYTES
    StepBlob.objects.bulk_create(
        StepBlob(
            step=step,
            field=field,
            text=text.encode("utf-8", "surrogatepass")[:limit].decode("utf-8", "ignore"),
            size=text_size(text),
            complete=text_size(text) <= limit,
        )
        for step, blobs in pairs
        for field, text in blobs.items()
    )


def _batch_order(records: Sequence[StepRecord]) -> list[tuple[StepRecord, int]]:
    """Records with their depth inside the batch, in start-time order except that a
    parent in the same batch always comes before its children."""
    by_span = {r.span_id: r for r in records}
    depth: dict[str, int] = {}

    def depth_of(record: StepRecord) -> int:
        chain: list[str] = []
        current = record.span_id
        while current not in depth:
            parent = by_span[current].parent_span_id
            if parent not in by_span or parent == current or parent in chain:
                depth[current] = 0  # a batch root (or a cycle, cut here)
                break
            chain.append(current)
            current = parent
        for span_id in reversed(chain):
            depth[span_id] = depth[by_span[span_id].parent_span_id] + 1
        return depth[record.span_id]

    far_past = datetime.min.replace(tzinfo=UTC)
    by_start = sorted(
        enumerate(records), key=lambda pair: (pair[1].started_at or far_past, pair[0])
    )
    ordered: list[tuple[StepRecord, int]] = []
    emitted: set[str] = set()
    for _, record in by_start:
        # Emit any not-yet-emitted ancestors in the batch first, outermost first.
        chain: list[StepRecord] = []
        node: StepRecord | None = record
        while node is not None and node.span_id not in emitted:
            chain.append(node)
            emitted.add(node.span_id)
            # Depth 0 is a batch root (its parent, if any, is elsewhere).
            node = by_span[node.parent_span_id] if depth_of(node) else None
        ordered.extend((r, depth_of(r)) for r in reversed(chain))
    return ordered


def steps_record_bulk(
    *, trace_id: uuid.UUID | str, records: Sequence[StepRecord], broadcast: bool = True
) -> list[Step]:
    """Append many steps to a trace in one transaction: bulk inserts, one broadcast.

    The same rules as ``step_record`` (fields shaped by ``_step_build``, sequence numbers
    taken under the trace's row lock, totals and heartbeat moved, broadcast after
    commit), for steps that name their parent by span id. A span id the trace already
    holds is skipped (an exporter retrying a batch), so sending twice is harmless. A
    parent found neither in the trace nor in the batch is resolved when it arrives:
    its waiting children are attached to it then. Returns the new steps in seq order.
    ``broadcast=False`` is for a trace created in the caller's transaction: nobody can
    be watching it yet, and a socket that joins after the commit reads the steps.
    """
    for record in records:
        if record.kind not in _STEP_KINDS:
            raise TraceError(f"unknown step kind {record.kind!r}")
    now = timezone.now()
    # Capped outside the lock, as step_record does.
    capped = {
        id(r): _step_capped(input=r.input, output=r.output, error=r.error, metadata=r.metadata)
        for r in records
    }
    with transaction.atomic():
        trace = _trace_lock_for_steps(trace_id)
        wanted: dict[str, StepRecord] = {}
        for record in records:
            wanted.setdefault(record.span_id, record)
        # A trace with no steps yet has nothing to skip, link to or attach (its first
        # batch, the usual case): three queries fewer.
        has_steps = trace.step_count > 0
        known = (
            set(
                Step.objects.filter(trace_id=trace.id, span_id__in=list(wanted)).values_list(
                    "span_id", flat=True
                )
            )
            if has_steps
            else set()
        )
        fresh = [r for span_id, r in wanted.items() if span_id not in known]
        if not fresh:
            return []
        outside = {r.parent_span_id for r in fresh if r.parent_span_id} - {r.span_id for r in fresh}
        parents: dict[str, Step] = (
            {
                p.span_id: p
                for p in Step.objects.filter(trace_id=trace.id, span_id__in=list(outside)).only(
                    "id", "trace_id", "seq", "span_id"
                )
            }
            if has_steps and outside
            else {}
        )
        seq = trace.step_count
        created: list[Step] = []
        levels: dict[int, list[Step]] = {}
        blobs: list[tuple[Step, dict[str, str]]] = []
        for record, level in _batch_order(fresh):
            seq += 1
            step_input, step_output, step_error, metadata, step_blobs = capped[id(record)]
            # In-batch parents get their primary key one level earlier (below).
            step = _step_build(
                trace_id=trace.id,
                seq=seq,
                kind=record.kind,
                name=record.name,
                input=step_input,
                output=step_output,
                error=step_error,
                parent=parents.get(record.parent_span_id) if level == 0 else None,
                tool_call_id=record.tool_call_id,
                span_id=record.span_id,
                parent_span_id=record.parent_span_id,
                started_at=record.started_at,
                ended_at=record.ended_at,
                prompt_tokens=record.prompt_tokens,
                completion_tokens=record.completion_tokens,
                metadata=metadata,
                now=now,
            )
            levels.setdefault(level, []).append(step)
            created.append(step)
            if step_blobs:
                blobs.append((step, step_blobs))
        by_span: dict[str, Step] = {}
        for level in sorted(levels):
            for step in levels[level]:
                if level:
                    parent = by_span[step.parent_span_id]
                    step.parent = parent
                    step.metadata["parent_seq"] = parent.seq
                    step.metadata["depth"] = _depth_under(parent)
            Step.objects.bulk_create(levels[level])
            by_span.update({s.span_id: s for s in levels[level]})
        # Children that came first, waiting for one of these parents.
        orphans = (
            list(
                Step.objects.filter(
                    trace_id=trace.id,
                    parent__isnull=True,
                    parent_span_id__in=list(by_span),
                    seq__lte=trace.step_count,
                ).only("id", "metadata", "parent_span_id")
            )
            if has_steps
            else []
        )
        for orphan in orphans:
            orphan.parent = by_span[orphan.parent_span_id]
            orphan.metadata["parent_seq"] = orphan.parent.seq
            orphan.metadata["depth"] = _depth_under(orphan.parent)
        if orphans:
            Step.objects.bulk_update(orphans, ["parent", "metadata"])
            _depths_below(orphans)
        if blobs:
            _blobs_save_many(blobs)
        prompt = sum(s.prompt_tokens for s in created)
        completion = sum(s.completion_tokens for s in created)
        earliest = min(s.started_at for s in created)
        changes: dict[str, Any] = {
            **_counters_for(created),
            "step_count": seq,
            "prompt_tokens": F("prompt_tokens") + prompt,
            "completion_tokens": F("completion_tokens") + completion,
            "heartbeat_at": Now(),
        }
        if trace.started_at is None or earliest < trace.started_at:
            changes["started_at"] = trace.started_at = earliest
        Trace.objects.filter(pk=trace.id).update(**changes)
    created.sort(key=lambda s: s.seq)
    if not broadcast:
        return created
    _step_message(created[-1], trace=trace, now=now, steps=created)
    return created


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
    # Ingested traces have no worker: they close when their spans stop coming
    # (traces_close_idle_ingested).
    candidates = Trace.objects.filter(
        status=Trace.Status.RUNNING, source=Trace.Source.RUNNER
    ).filter(Q(heartbeat_at__lt=cutoff) | Q(deadline_at__lt=cutoff))
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


def call_ended(*, trace_id: uuid.UUID | str, call_id: str, announce: bool = True) -> None:
    """The call ``call_id`` ended (its step, if any, is saved by now).

    ``announce=False`` when the call's step is about to be recorded with
    ``step_record(ended_call=call_id)``, which announces the end with the step: called
    just before it, so a socket that connects in between is not told of a call that no
    event would then end."""
    from .calls import calls_forget
    from .events import CALL_ENDED, call_event

    try:
        calls_forget(trace_id=trace_id, call_id=call_id)
    except Exception:  # noqa: BLE001 - see call_started
        logger.exception("could not forget call %s of trace %s", call_id, trace_id)
    if announce:
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
        rollup_invalidate(trace_ids=qs.values_list("id", flat=True))
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


# --- ingested traces (OTLP, the SDK) --------------------------------------------------

INGESTED_SOURCES = (Trace.Source.OTLP, Trace.Source.SDK)
SDK_NAME = "tooltrail-sdk"  # telemetry.sdk.name of spans sent by sdk/tooltrail_sdk


def _text_of(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _root_fields(records: Sequence[StepRecord]) -> dict[str, str]:
    """What a trace takes from its root span, if ``records`` hold it: its name, input,
    output and error."""
    root = next((r for r in records if not r.parent_span_id), None)
    if root is None:
        return {}
    return {
        "name": str(root.metadata.get("attributes", {}).get("gen_ai.agent.name") or root.name)[
            :200
        ],
        "input": _text_of(root.input),
        "output": _text_of(root.output),
        "error": root.error,
    }


def _ingested_traces_new(
    *, groups: dict[str, list[StepRecord]], user, source: str
) -> dict[str, Trace]:
    """Running traces for OTLP trace ids seen for the first time, in one insert. Raises
    IntegrityError if another request created one of them meanwhile."""
    if not groups:
        return {}
    now = timezone.now()
    traces = {}
    for otel_trace_id, records in groups.items():
        first = min(records, key=lambda r: (bool(r.parent_span_id), r.started_at or now))
        resource = first.metadata.get("otel", {}).get("resource", {})
        fields = {"name": (first.name or otel_trace_id)[:200], **_root_fields(records)}
        traces[otel_trace_id] = Trace(
            **fields,
            agent_slug=slugify(first.service_name)[:100],
            source=Trace.Source.SDK if resource.get("telemetry.sdk.name") == SDK_NAME else source,
            status=Trace.Status.RUNNING,
            started_at=first.started_at or now,
            heartbeat_at=now,
            created_by=user,
            otel_trace_id=otel_trace_id,
            metadata={"service_name": first.service_name} if first.service_name else {},
        )
    with transaction.atomic():  # a savepoint: a losing race is retried by the caller
        Trace.objects.bulk_create(traces.values())
    for trace in traces.values():
        _trace_broadcast(trace, created=True)
    return traces


def spans_ingest(
    *, records: Sequence[StepRecord], user=None, source: str = Trace.Source.OTLP
) -> int:
    """Save decoded spans, whatever traces they belong to, in one transaction: each OTLP
    trace id gets (or already has) a running trace, its spans are appended with
    ``steps_record_bulk``. A trace closed as idle is opened again; the root span names
    the trace and gives it its input, output and error; the SDK's outermost span
    finishes it. Returns how many new steps were saved (spans sent before are
    skipped). Raises TraceError, with nothing saved, if any record is unusable."""
    by_trace: dict[str, list[StepRecord]] = {}
    for record in records:
        by_trace.setdefault(record.otel_trace_id, []).append(record)
    for attempt in (1, 2):
        try:
            return _spans_ingest_once(by_trace=by_trace, user=user, source=source)
        except IntegrityError:
            # Another request created one of these traces first (PostgreSQL, many
            # server processes): the second attempt finds it and appends to it.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _spans_ingest_once(*, by_trace: dict[str, list[StepRecord]], user, source: str) -> int:
    saved = 0
    with transaction.atomic():
        existing = {
            t.otel_trace_id: t
            for t in Trace.objects.filter(
                otel_trace_id__in=list(by_trace), source__in=INGESTED_SOURCES
            )
        }
        created = _ingested_traces_new(
            groups={k: v for k, v in by_trace.items() if k not in existing},
            user=user,
            source=source,
        )
        for otel_trace_id, group in by_trace.items():
            trace = existing.get(otel_trace_id)
            if trace is not None:
                changes = _root_fields(group)
                if trace.is_finished:
                    changes.update(status=Trace.Status.RUNNING, ended_at=None)
                    # Its hours may be folded into the dashboard's roll-up: count them live.
                    rollup_invalidate(trace_ids=[trace.id])
                if changes:
                    for field, value in changes.items():
                        setattr(trace, field, value)
                    trace.save(update_fields=list(changes))
                    if "status" in changes:
                        _trace_broadcast(trace)
            else:
                trace = created[otel_trace_id]
            # A trace created here has no listeners yet: no step message for it.
            saved += len(
                steps_record_bulk(
                    trace_id=trace.id, records=group, broadcast=otel_trace_id in existing
                )
            )
            if any(r.metadata.get("attributes", {}).get("tooltrail.trace.final") for r in group):
                # The SDK marks its outermost span: the trace is complete when it lands.
                trace_finish(
                    trace_id=trace.id,
                    status=Trace.Status.FAILED if trace.error else Trace.Status.SUCCEEDED,
                    output=trace.output,
                    error=trace.error,
                )
    return saved


def traces_close_idle_ingested(*, idle_after: float | None = None) -> list[Trace]:
    """Finish ingested traces whose spans stopped coming ``idle_after`` seconds ago:
    failed if their root span failed, else succeeded. A span arriving later opens the
    trace again."""
    seconds = settings.TOOLTRAIL_INGEST_IDLE_SECONDS if idle_after is None else idle_after
    cutoff = timezone.now() - timedelta(seconds=seconds)
    closed = []
    for trace in Trace.objects.filter(
        status=Trace.Status.RUNNING, source__in=INGESTED_SOURCES, heartbeat_at__lt=cutoff
    ).only("id", "error"):
        closed.append(
            trace_finish(
                trace_id=trace.id,
                status=Trace.Status.FAILED if trace.error else Trace.Status.SUCCEEDED,
                error=trace.error,
            )
        )
    return closed


# --- retention --------------------------------------------------------------------------


def traces_apply_retention(
    *, max_age_days: float | None = None, max_count: int | None = None
) -> int:
    """Delete finished traces older than ``max_age_days`` and, beyond the newest
    ``max_count``, the older ones (settings TOOLTRAIL_RETENTION_DAYS and
    TOOLTRAIL_RETENTION_MAX_TRACES; 0 keeps everything). Running traces are never
    deleted. Returns how many traces were deleted."""
    days = settings.TOOLTRAIL_RETENTION_DAYS if max_age_days is None else max_age_days
    count = settings.TOOLTRAIL_RETENTION_MAX_TRACES if max_count is None else max_count
    finished = Trace.objects.filter(status__in=Trace.FINISHED)
    doomed: set = set()
    if days:
        cutoff = timezone.now() - timedelta(days=days)
        doomed.update(finished.filter(created_at__lt=cutoff).values_list("id", flat=True))
    if count:
        keep = Trace.objects.order_by("-created_at", "-id").values_list("id", flat=True)[:count]
        doomed.update(finished.exclude(id__in=list(keep)).values_list("id", flat=True))
    deleted = 0
    ids = list(doomed)
    for start in range(0, len(ids), 500):
        with transaction.atomic():
            rollup_invalidate(trace_ids=ids[start : start + 500])
            deleted += (
                Trace.objects.filter(id__in=ids[start : start + 500])
                .delete()[1]
                .get("traces.Trace", 0)
            )
    return deleted


# --- import -------------------------------------------------------------------------------


def _parse_time(value: Any, *, what: str) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        raise TraceError(f"{what} {value!r} is not an ISO 8601 time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def check_trace_import(*, data: Any) -> None:
    """Raise TraceError, saying what is wrong, unless ``data`` is a Tooltrail trace
    export (format ``tooltrail.trace`` version 1) that can be imported here."""
    from .transfer import FORMAT, VERSION

    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise TraceError(f"not a Tooltrail trace export (format must be {FORMAT!r})")
    if data.get("version") != VERSION:
        raise TraceError(f"unsupported version {data.get('version')!r}; this reads {VERSION}")
    trace, steps = data.get("trace"), data.get("steps")
    if not isinstance(trace, dict) or not isinstance(steps, list):
        raise TraceError("the export needs a 'trace' object and a 'steps' list")
    try:
        trace_id = uuid.UUID(str(trace.get("id")))
    except ValueError:
        raise TraceError(f"trace id {trace.get('id')!r} is not a UUID") from None
    if Trace.objects.filter(pk=trace_id).exists():
        raise TraceError(f"trace {trace_id} already exists here; delete it first")
    otel_trace_id = trace.get("otel_trace_id") or ""
    if (
        otel_trace_id
        and trace.get("source") in INGESTED_SOURCES
        and Trace.objects.filter(otel_trace_id=otel_trace_id, source__in=INGESTED_SOURCES).exists()
    ):
        raise TraceError(f"a trace with OTLP trace id {otel_trace_id} already exists here")
    if trace.get("status") not in Trace.Status.values:
        raise TraceError(f"unknown trace status {trace.get('status')!r}")
    seqs = set()
    for index, step in enumerate(steps):
        if not isinstance(step, dict):
            raise TraceError(f"step {index} is not an object")
        seq = step.get("seq")
        if not isinstance(seq, int) or seq < 1 or seq in seqs:
            raise TraceError(f"step {index}: seq must be a positive integer, unique in the trace")
        seqs.add(seq)
        if step.get("kind") not in Step.Kind.values:
            raise TraceError(f"step {seq}: unknown kind {step.get('kind')!r}")
        if step.get("status", "ok") not in Step.Status.values:
            raise TraceError(f"step {seq}: unknown status {step.get('status')!r}")
    for step in steps:
        if step.get("parent_seq") is not None and step["parent_seq"] not in seqs:
            raise TraceError(f"step {step['seq']}: parent step {step['parent_seq']} is missing")


def trace_import(*, data: dict[str, Any], user=None) -> Trace:
    """Recreate an exported trace exactly (same id, sequence numbers, tree, times and
    metadata); the importing user becomes its creator.

    A finished record is restored whole rather than appended step by step, so this
    keeps the exported sequence numbers instead of taking new ones; rows are still
    shaped by ``_step_build``. Raises TraceError (nothing written) when the data is
    not an importable export (``check_trace_import``).
    """
    from .transfer import STEP_TIMES, TRACE_FIELDS, TRACE_TIMES

    check_trace_import(data=data)
    info = data["trace"]
    now = timezone.now()
    with transaction.atomic():
        trace = Trace.objects.create(
            id=uuid.UUID(str(info["id"])),
            created_by=user,
            **{f: info[f] for f in TRACE_FIELDS if f in info and info[f] is not None},
            **{f: _parse_time(info.get(f), what=f) for f in TRACE_TIMES[1:]},
        )
        created_at = _parse_time(info.get("created_at"), what="created_at")
        if created_at:
            Trace.objects.filter(pk=trace.id).update(created_at=created_at)
            trace.created_at = created_at
        rows: dict[int, Step] = {}
        pending = sorted(data["steps"], key=lambda s: s["seq"])
        # Parents are saved before their children (a child may precede its parent in
        # seq order when spans arrived out of order).
        while pending:
            ready = [s for s in pending if s.get("parent_seq") is None or s["parent_seq"] in rows]
            if not ready:
                raise TraceError("the steps' parents form a cycle")
            batch = []
            blobs: list[tuple[Step, dict[str, str]]] = []
            for s in ready:
                step_input, step_output, step_error, metadata, step_blobs = _step_capped(
                    input=s.get("input"),
                    output=s.get("output"),
                    error=s.get("error") or "",
                    metadata=s.get("metadata") or {},
                )
                step = _step_build(
                    trace_id=trace.id,
                    seq=s["seq"],
                    kind=s["kind"],
                    name=s.get("name") or "",
                    input=step_input,
                    output=step_output,
                    error=step_error,
                    parent=rows.get(s.get("parent_seq")),
                    tool_call_id=s.get("tool_call_id") or "",
                    span_id=s.get("span_id") or "",
                    parent_span_id=s.get("parent_span_id") or "",
                    prompt_tokens=s.get("prompt_tokens") or 0,
                    completion_tokens=s.get("completion_tokens") or 0,
                    metadata=metadata,
                    now=now,
                    **{f: _parse_time(s.get(f), what=f"step {s['seq']} {f}") for f in STEP_TIMES},
                )
                step.status = s.get("status") or step.status
                batch.append(step)
                if step_blobs:
                    blobs.append((step, step_blobs))
            Step.objects.bulk_create(batch)
            if blobs:
                _blobs_save_many(blobs)
            rows.update({s.seq: s for s in batch})
            taken = {id(s) for s in ready}
            pending = [s for s in pending if id(s) not in taken]
        # Its times are from the past: hours the dashboard's roll-up may hold already.
        rollup_invalidate(trace_ids=[trace.id])
        _trace_broadcast(trace, created=True)
    return trace
