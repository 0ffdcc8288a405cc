"""Writes of labels, queues and suggestions.

Labels go the same way as steps: save, commit, then one ``label.changed`` event to
the trace's channel group (``traces.broadcast``), so every open trace page redraws
the step's labels. Edits are optimistic: the caller says which ``version`` it read,
and a label changed since is refused with ``LabelConflict``, never overwritten.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Case, F, Q, Subquery, Value, When
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce
from django.template.loader import render_to_string
from django.utils import timezone

from .annotation_models import (
    Annotation,
    AnnotationQueue,
    AnnotationRevision,
    ErrorCategory,
    QueueAssignment,
    QueueItem,
    Suggestion,
    Verdict,
)
from .annotation_selectors import labels_for, tool_schema_find
from .models import Step, Trace
from .schema_check import schema_problems


class LabelError(ValueError):
    """The label cannot be saved as given (unknown verdict, category or step, a
    corrected call that breaks the tool's schema…). The message names the problem."""


class LabelConflict(Exception):
    """Someone changed the label since the caller read it (optimistic locking)."""


class QueueError(ValueError):
    """The queue cannot be built or used as asked."""


# --- payloads ---------------------------------------------------------------------------


def annotation_payload(annotation: Annotation) -> dict[str, Any]:
    """The JSON form of a label, as the API and JSON websocket clients get it."""
    return {
        "id": annotation.id,
        "trace_id": str(annotation.trace_id),
        "step_seq": annotation.step.seq if annotation.step_id else None,
        "author": annotation.author.username,
        "role": annotation.role,
        "verdict": annotation.verdict,
        "category": annotation.category.slug if annotation.category_id else None,
        "note": annotation.note,
        "corrected_call": annotation.corrected_call,
        "score": annotation.score,
        "queue_id": annotation.queue_id,
        "version": annotation.version,
        "created_at": annotation.created_at.isoformat(),
        "updated_at": annotation.updated_at.isoformat(),
    }


def labels_broadcast(*, trace_id, step: Step | None) -> None:
    """Once this commits, tell everyone watching the trace that the step's (or trace's)
    labels changed: one ``label`` event (docs/events.md); each server renders the
    labels as committed (``labels_frames``), never a label that rolled back."""
    from .events import event_send, label_event

    event_send(label_event(trace_id=trace_id, step_seq=step.seq if step else None))


def labels_frames(*, trace_id, step_seq: int | None) -> tuple[str, str]:
    """The labels of step ``step_seq`` (None: of the trace) as they are now: the page's
    HTML (out-of-band swap) and the JSON websocket frame."""
    step = Step.objects.filter(trace_id=trace_id, seq=step_seq).first() if step_seq else None
    labels = labels_for(trace_id=trace_id, step_id=step.id if step else None)
    html = render_to_string(
        "traces/_step_labels.html", {"labels_step": step, "labels": labels, "oob": True}
    )
    body = {
        "type": "labels",
        "trace_id": str(trace_id),
        "step_seq": step.seq if step else None,
        "labels": [annotation_payload(a) for a in labels],
    }
    return html, json.dumps(body, default=str)


# --- checks -----------------------------------------------------------------------------


def category_get(slug: str | None) -> ErrorCategory | None:
    if not slug:
        return None
    category = ErrorCategory.objects.filter(slug=slug, active=True).first()
    if category is None:
        known = ", ".join(ErrorCategory.objects.filter(active=True).values_list("slug", flat=True))
        raise LabelError(f"unknown category {slug!r}; known categories: {known}")
    return category


def corrected_call_check(*, step: Step, corrected_call: Any) -> dict[str, Any]:
    """The corrected call as ``{"name", "arguments"}``, or LabelError naming what is
    wrong. Its arguments must satisfy the named tool's JSON Schema."""
    if step.kind != Step.Kind.TOOL_CALL:
        raise LabelError(
            f"step #{step.seq} is a {step.kind}; a corrected call belongs on a tool_call step"
        )
    if not isinstance(corrected_call, dict):
        raise LabelError('corrected_call must be an object {"name": …, "arguments": {…}}')
    name = corrected_call.get("name")
    if not isinstance(name, str) or not name.strip():
        raise LabelError("corrected_call.name must name a tool")
    name = name.strip()
    arguments = corrected_call.get("arguments", {})
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments or "{}")
        except json.JSONDecodeError as exc:
            raise LabelError(f"corrected_call.arguments is not valid JSON: {exc.msg}") from None
    if not isinstance(arguments, dict):
        raise LabelError("corrected_call.arguments must be a JSON object")
    schema = tool_schema_find(trace_id=step.trace_id, name=name, step=step)
    if schema is None:
        raise LabelError(
            f"no JSON Schema is recorded for tool {name!r}, so the corrected call cannot be "
            "checked; name a tool this agent has called"
        )
    problems = schema_problems(schema=schema, arguments=arguments)
    if problems:
        raise LabelError(
            f"the corrected call breaks the schema of {name!r}: " + "; ".join(problems)
        )
    return {"name": name, "arguments": arguments}


def _snapshot(annotation: Annotation) -> dict[str, Any]:
    return {
        "verdict": annotation.verdict,
        "category": annotation.category.slug if annotation.category_id else None,
        "note": annotation.note,
        "corrected_call": annotation.corrected_call,
        "score": annotation.score,
    }


# --- labels -----------------------------------------------------------------------------


class ClaimExpired(LabelConflict):
    """The caller's claim on a queue item expired and another annotator took the item
    over; their label was not saved."""


@dataclass
class _CheckedLabel:
    trace: Trace
    step: Step | None
    fields: dict[str, Any]
    queue: AnnotationQueue | None


def _label_check(
    *,
    trace_id,
    step_seq: int | None,
    verdict: str,
    category: str | None,
    note: str,
    corrected_call: dict[str, Any] | None,
    score: float | None,
    queue_id: int | None,
    step: Step | None = None,
) -> _CheckedLabel:
    """Everything annotation_save checks before it writes; LabelError names the problem.
    A ``step`` the caller already holds (with its trace) saves reading it again."""
    if verdict not in Verdict.values:
        raise LabelError(f"unknown verdict {verdict!r}; use good, bad or neutral")
    if step is not None:
        trace = step.trace
    elif step_seq is not None:
        # One read for the step and its trace; the trace alone only to name the problem.
        step = (
            Step.objects.select_related("trace").filter(trace_id=trace_id, seq=step_seq).first()
            if _is_uuid(trace_id)
            else None
        )
        if step is None:
            if not _is_uuid(trace_id) or not Trace.objects.filter(pk=trace_id).exists():
                raise LabelError(f"unknown trace {trace_id}")
            raise LabelError(f"trace {trace_id} has no step #{step_seq}")
        trace = step.trace
    else:
        try:
            trace = Trace.objects.get(pk=trace_id)
        except (Trace.DoesNotExist, ValueError, TypeError, ValidationError):
            raise LabelError(f"unknown trace {trace_id}") from None
    cat = category_get(category)
    call = (
        corrected_call_check(step=step, corrected_call=corrected_call) if corrected_call else None
    )
    if call and step is None:
        raise LabelError("a corrected call belongs on a step, not on the whole trace")
    if score is not None and not (isinstance(score, int | float) and 0 <= score <= 1):
        raise LabelError("score must be a number from 0 to 1")
    queue = None
    if queue_id is not None:
        queue = AnnotationQueue.objects.filter(pk=queue_id).first()
        if queue is None:
            raise LabelError(f"unknown queue {queue_id}")
    fields = {
        "verdict": verdict,
        "category": cat,
        "note": note or "",
        "corrected_call": call,
        "score": score,
    }
    return _CheckedLabel(trace=trace, step=step, fields=fields, queue=queue)


def _is_uuid(value) -> bool:
    if isinstance(value, uuid.UUID):
        return True
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def annotation_save(
    *,
    user,
    trace_id: uuid.UUID | str,
    step_seq: int | None,
    verdict: str,
    category: str | None = None,
    note: str = "",
    corrected_call: dict[str, Any] | None = None,
    score: float | None = None,
    queue_id: int | None = None,
    version: int | None = None,
    role: str = Annotation.Role.HUMAN,
) -> Annotation:
    """Create or change ``user``'s label on a step (or, with ``step_seq`` None, on the
    whole trace): validate everything first, then save, write the revision, mark the
    user's queue assignment done, commit, and broadcast.

    Changing an existing label needs the ``version`` the caller read: a different one
    (or none) raises LabelConflict naming who changed it, and nothing is written.
    A gold label is the one per step, whoever adjudicated it last. A label for a queue
    item whose claim expired and was taken over by someone else raises ClaimExpired.
    """
    checked = _label_check(
        trace_id=trace_id,
        step_seq=step_seq,
        verdict=verdict,
        category=category,
        note=note,
        corrected_call=corrected_call,
        score=score,
        queue_id=queue_id,
    )
    with transaction.atomic():
        return _annotation_write(user=user, checked=checked, version=version, role=role)


def _annotation_write(
    *, user, checked: _CheckedLabel, version: int | None, role: str
) -> Annotation:
    """The writes of annotation_save; the caller holds the transaction."""
    trace, step, fields, queue = checked.trace, checked.step, checked.fields, checked.queue
    lookup: dict[str, Any] = {"trace": trace, "step": step, "role": role}
    if step is None or role != Annotation.Role.GOLD:
        lookup["author"] = user
    # Ordered by pk: the default ordering joins steps, which FOR UPDATE cannot take.
    current = Annotation.objects.select_for_update().filter(**lookup).order_by("pk").first()
    if current is None:
        try:
            with transaction.atomic():
                annotation = Annotation.objects.create(
                    trace=trace, step=step, author=user, role=role, queue=queue, **fields
                )
        except IntegrityError:
            raise LabelConflict(
                "someone saved this label at the same moment; reload to see it"
            ) from None
    else:
        if version is None or int(version) != current.version:
            last = current.revisions.select_related("author").order_by("-version").first()
            who = last.author.username if last else current.author.username
            raise LabelConflict(
                f"this label was changed by {who} at {current.updated_at:%H:%M:%S} "
                f"(now version {current.version}, you sent "
                f"{'none' if version is None else version}); reload to see it — "
                "your change was not saved"
            )
        updated = Annotation.objects.filter(pk=current.pk, version=current.version).update(
            **fields,
            author=user,
            version=F("version") + 1,
            updated_at=timezone.now(),
            queue=queue or current.queue,
        )
        if updated != 1:
            raise LabelConflict("this label changed while saving; reload to see it")
        annotation = Annotation.objects.select_related("author", "category", "step").get(
            pk=current.pk
        )
    AnnotationRevision.objects.create(
        annotation=annotation,
        version=annotation.version,
        author=user,
        data=_snapshot(annotation),
    )
    if step is not None and role == Annotation.Role.HUMAN:
        _assignments_finish(user=user, step=step, queue=queue)
    labels_broadcast(trace_id=trace.id, step=step)
    return annotation


def annotation_adjudicate(
    *,
    reviewer,
    trace_id: uuid.UUID | str,
    step_seq: int,
    verdict: str,
    category: str | None = None,
    note: str = "",
    corrected_call: dict[str, Any] | None = None,
    version: int | None = None,
) -> Annotation:
    """Settle a disagreement: the reviewer's label becomes the step's gold label."""
    return annotation_save(
        user=reviewer,
        trace_id=trace_id,
        step_seq=step_seq,
        verdict=verdict,
        category=category,
        note=note,
        corrected_call=corrected_call,
        version=version,
        role=Annotation.Role.GOLD,
    )


def _assignments_finish(*, user, step: Step, queue: AnnotationQueue | None) -> None:
    """Mark the user's open assignments on ``step`` done and count them on their items.

    The items are locked first (FOR NO KEY UPDATE, as the claim query locks them), then
    the assignments are changed only while still open: a claim that another annotator
    took over (before, or while this label was being saved) raises ClaimExpired and the
    label rolls back. Three statements, whatever the outcome.
    """
    wanted = Q(assignments__status__in=QueueAssignment.OPEN)
    if queue is not None:
        wanted |= Q(assignments__queue=queue, assignments__status=QueueAssignment.Status.EXPIRED)
    held = list(
        _locked(QueueItem.objects.filter(step=step))
        .filter(Q(assignments__user=user) & wanted)
        .order_by("pk")
        .values_list("pk", "assignments__status")
    )
    if any(status == QueueAssignment.Status.EXPIRED for _pk, status in held):
        raise ClaimExpired(_claim_lost_message(user=user, item_id=held[0][0]))
    item_ids = [pk for pk, _status in held]
    if not item_ids:
        return
    now = timezone.now()
    finished = QueueAssignment.objects.filter(
        user=user, item_id__in=item_ids, status__in=QueueAssignment.OPEN
    ).update(
        status=QueueAssignment.Status.DONE,
        done_at=now,
        claimed_at=Coalesce(F("claimed_at"), Value(now)),
    )
    if finished != len(item_ids):
        raise ClaimExpired(_claim_lost_message(user=user, item_id=item_ids[0]))
    QueueItem.objects.filter(pk__in=item_ids).update(done_count=F("done_count") + 1)


def _claim_lost_message(*, user, item_id: int) -> str:
    minutes = settings.TOOLTRAIL_ANNOTATION_CLAIM_MINUTES
    taker = (
        QueueAssignment.objects.filter(item_id=item_id)
        .exclude(user=user)
        .exclude(status__in=(QueueAssignment.Status.SKIPPED, QueueAssignment.Status.EXPIRED))
        .select_related("user")
        .order_by("-claimed_at")
        .first()
    )
    who = taker.user.username if taker else "another annotator"
    return (
        f"your claim on this item expired (claims last {minutes:g} minutes) and {who} "
        "has taken it over; your label was not saved"
    )


def _locked(qs):
    """``qs`` locking its own rows where the database can (PostgreSQL): FOR NO KEY UPDATE,
    as the claim query locks items, which does not stop other transactions inserting
    assignments that point at them."""
    if connection.vendor != "postgresql":
        return qs  # SQLite: a write transaction locks the whole database
    return qs.select_for_update(no_key=True, of=("self",))


# --- queues -----------------------------------------------------------------------------

FILTER_KEYS = {"agent", "tool", "status", "error", "since", "until", "sample", "seed"}


def trace_filter_check(raw: dict[str, Any]) -> dict[str, Any]:
    """A saved trace filter, normalised: ``agent`` (slug), ``tool`` (a tool it called),
    ``status``, ``error`` ("any" for traces with an error step or error, else text the
    error contains), ``since``/``until`` (ISO dates), ``sample`` (how many traces, at
    random) and ``seed`` (for that sample). Raises QueueError on anything else."""
    from datetime import date

    clean: dict[str, Any] = {}
    for key, value in (raw or {}).items():
        if key not in FILTER_KEYS:
            raise QueueError(f"unknown filter {key!r}; use {', '.join(sorted(FILTER_KEYS))}")
        if value in (None, ""):
            continue
        if key == "status" and value not in Trace.Status.values:
            raise QueueError(f"unknown status {value!r}")
        if key in ("since", "until"):
            try:
                value = date.fromisoformat(str(value)).isoformat()
            except ValueError:
                raise QueueError(f"{key} must be a date like 2026-12-01, not {value!r}") from None
        if key in ("sample", "seed"):
            try:
                value = int(value)
            except (TypeError, ValueError):
                raise QueueError(f"{key} must be a whole number, not {value!r}") from None
            if key == "sample" and value < 1:
                raise QueueError("sample must be at least 1")
        clean[key] = value if key in ("sample", "seed", "since", "until") else str(value)
    return clean


def trace_ids_matching(filter: dict[str, Any]) -> list[uuid.UUID]:
    """The ids of the finished traces a (checked) filter selects, oldest first; with
    ``sample``, that many of them chosen with ``random.Random(seed)``."""
    from datetime import date, timedelta

    from django.db.models import Q

    qs = Trace.objects.filter(status__in=Trace.FINISHED)
    if filter.get("agent"):
        qs = qs.filter(agent_slug=filter["agent"])
    if filter.get("status"):
        qs = qs.filter(status=filter["status"])
    if filter.get("tool"):
        qs = qs.filter(
            id__in=Step.objects.filter(kind=Step.Kind.TOOL_CALL, name=filter["tool"]).values(
                "trace_id"
            )
        )
    if filter.get("error"):
        if filter["error"] == "any":
            with_error = Step.objects.filter(status=Step.Status.ERROR).values("trace_id")
            qs = qs.filter(Q(id__in=with_error) | ~Q(error=""))
        else:
            text = filter["error"]
            steps = Step.objects.filter(error__icontains=text).values("trace_id")
            qs = qs.filter(Q(id__in=steps) | Q(error__icontains=text))
    if filter.get("since"):
        qs = qs.filter(created_at__date__gte=date.fromisoformat(filter["since"]))
    if filter.get("until"):
        qs = qs.filter(created_at__lt=date.fromisoformat(filter["until"]) + timedelta(days=1))
    ids = list(qs.order_by("created_at", "id").values_list("id", flat=True))
    if filter.get("sample") and filter["sample"] < len(ids):
        ids = random.Random(filter.get("seed", 0)).sample(ids, filter["sample"])
        ids.sort(key=str)
    return ids


STEP_KINDS = {
    AnnotationQueue.StepKinds.ALL: None,
    AnnotationQueue.StepKinds.TOOL_CALLS: [Step.Kind.TOOL_CALL],
    AnnotationQueue.StepKinds.MODEL_CALLS: [Step.Kind.MODEL_CALL],
}


def _queue_settings_check(*, step_kinds: str, overlap: int, assignment: str, annotators) -> None:
    if step_kinds not in AnnotationQueue.StepKinds.values:
        raise QueueError(f"unknown step kinds {step_kinds!r}; use all, tool_calls or model_calls")
    if assignment not in AnnotationQueue.Assignment.values:
        raise QueueError(f"unknown assignment {assignment!r}; use round_robin or pull_next")
    if not isinstance(overlap, int) or not 1 <= overlap <= 10:
        raise QueueError("overlap (annotators per item) must be from 1 to 10")
    if assignment == AnnotationQueue.Assignment.ROUND_ROBIN and len(annotators) < overlap:
        raise QueueError(
            f"round-robin with overlap {overlap} needs at least {overlap} annotators "
            f"on the queue; it has {len(annotators)}"
        )


def queue_create(
    *,
    name: str,
    filter: dict[str, Any] | None = None,
    trace_ids: Iterable[uuid.UUID | str] | None = None,
    source: str = AnnotationQueue.Source.FILTER,
    step_kinds: str = AnnotationQueue.StepKinds.ALL,
    overlap: int = 1,
    assignment: str = AnnotationQueue.Assignment.PULL_NEXT,
    annotators: Iterable = (),
    instructions: str = "",
    judge_endpoint: str = "",
    judge_rubric: str = "",
    created_by=None,
) -> AnnotationQueue:
    """Build a queue with one item per matching step of the selected traces: those of
    ``filter`` (a saved trace filter), or the given ``trace_ids``. Round-robin queues
    hand item *i* to annotators *i·overlap … i·overlap+overlap−1* (cyclically)."""
    annotators = sorted(annotators, key=lambda u: u.pk)
    if not name.strip():
        raise QueueError("a queue needs a name")
    _queue_settings_check(
        step_kinds=step_kinds, overlap=overlap, assignment=assignment, annotators=annotators
    )
    clean_filter = trace_filter_check(filter or {})
    ids = list(trace_ids) if trace_ids is not None else trace_ids_matching(clean_filter)
    steps = Step.objects.filter(trace_id__in=ids)
    if STEP_KINDS[step_kinds]:
        steps = steps.filter(kind__in=STEP_KINDS[step_kinds])
    order = {str(t): i for i, t in enumerate(ids)}
    pairs = sorted(
        steps.values_list("trace_id", "id", "seq"), key=lambda r: (order[str(r[0])], r[2])
    )
    with transaction.atomic():
        queue = AnnotationQueue.objects.create(
            name=name.strip(),
            source=source,
            filter=clean_filter,
            step_kinds=step_kinds,
            overlap=overlap,
            assignment=assignment,
            instructions=instructions,
            judge_endpoint=judge_endpoint,
            judge_rubric=judge_rubric,
            created_by=created_by,
        )
        queue.annotators.set(annotators)
        round_robin = assignment == AnnotationQueue.Assignment.ROUND_ROBIN
        items = QueueItem.objects.bulk_create(
            [
                QueueItem(
                    queue=queue,
                    trace_id=trace_id,
                    step_id=step_id,
                    position=position,
                    claims=overlap if round_robin else 0,
                    is_full=round_robin,
                )
                for position, (trace_id, step_id, _seq) in enumerate(pairs, start=1)
            ],
            batch_size=1000,
        )
        if round_robin:
            n = len(annotators)
            QueueAssignment.objects.bulk_create(
                [
                    QueueAssignment(
                        item=item,
                        queue=queue,
                        user=annotators[((item.position - 1) * overlap + k) % n],
                        position=item.position,
                        status=QueueAssignment.Status.ASSIGNED,
                    )
                    for item in items
                    for k in range(overlap)
                ],
                batch_size=1000,
            )
        if judge_endpoint:
            queue_suggestions_request(queue=queue)
    return queue


def queue_create_from_failures(
    *, name: str, trace_ids: Iterable[uuid.UUID | str], **settings: Any
) -> AnnotationQueue:
    """The hook for evaluations: a queue of an experiment's failed cases, given the
    ids of their traces (the experiment decides what failed)."""
    return queue_create(
        name=name, trace_ids=trace_ids, source=AnnotationQueue.Source.EXPERIMENT, **settings
    )


def claim_cutoff(now: datetime | None = None) -> datetime | None:
    """Claims made before this have expired (TOOLTRAIL_ANNOTATION_CLAIM_MINUTES; None
    when claims never expire)."""
    minutes = settings.TOOLTRAIL_ANNOTATION_CLAIM_MINUTES
    if not minutes or minutes <= 0:
        return None
    return (now or timezone.now()) - timedelta(minutes=minutes)


# The claim query, in SQL: the ORM took ~4 ms of CPU to compile it (more than the
# database takes to run it) and it runs on every key press. Two candidates, each found
# by its own index and locked with SKIP LOCKED where the database can (PostgreSQL):
# an item whose claim expired (the expired claim row is locked, so two annotators never
# take over the same one), else the first item with a free slot; never an item the
# user holds or held.
_EXPIRED_SQL = """(
    SELECT a.item_id FROM {assignment} a INNER JOIN {item} i ON i.id = a.item_id
    WHERE a.queue_id = %s AND a.status = %s AND a.claimed_at < %s AND a.user_id <> %s
      AND i.is_full AND a.item_id NOT IN ({mine})
    ORDER BY a.position LIMIT 1 {lock_expired})"""
_FRESH_SQL = """(
    SELECT i.id FROM {item} i
    WHERE i.queue_id = %s AND NOT i.is_full AND i.id NOT IN ({mine})
    ORDER BY i.position LIMIT 1 {lock_fresh})"""
_MINE_SQL = "SELECT m.item_id FROM {assignment} m WHERE m.queue_id = %s AND m.user_id = %s"


def _claim_candidate(queue: AnnotationQueue, user, cutoff: datetime | None):
    """One query for the item to claim (the SQL above), with its step, trace and
    suggestion for the page; None when nothing is free for the user."""
    names = {
        "assignment": connection.ops.quote_name(QueueAssignment._meta.db_table),
        "item": connection.ops.quote_name(QueueItem._meta.db_table),
    }
    names["mine"] = _MINE_SQL.format(**names)
    lock = connection.vendor == "postgresql"  # SQLite locks the whole database instead
    names["lock_expired"] = "FOR NO KEY UPDATE OF a SKIP LOCKED" if lock else ""
    names["lock_fresh"] = "FOR NO KEY UPDATE OF i SKIP LOCKED" if lock else ""
    fresh_params = [queue.id, queue.id, user.id]
    sql, params = _FRESH_SQL.format(**names), fresh_params
    if cutoff is not None:
        when = connection.ops.adapt_datetimefield_value(cutoff)
        expired = [queue.id, QueueAssignment.Status.CLAIMED, when, user.id, queue.id, user.id]
        sql = f"COALESCE({_EXPIRED_SQL.format(**names)}, {sql})"
        params = expired + params
    return (
        QueueItem.objects.filter(id=RawSQL(sql, params))
        .select_related("step", "trace", "suggestion__category")
        .order_by()
        .first()
    )


def _claim_take_over(*, item: QueueItem, user, cutoff: datetime, now: datetime) -> bool:
    """Mark one expired claim on ``item`` (not the user's) as expired; False if there is
    none any more (its holder labelled it meanwhile)."""
    expired = (
        QueueAssignment.objects.filter(
            item=item, status=QueueAssignment.Status.CLAIMED, claimed_at__lt=cutoff
        )
        .exclude(user=user)
        .order_by("claimed_at", "pk")
        .values("pk")[:1]
    )
    return bool(
        QueueAssignment.objects.filter(
            pk__in=Subquery(expired), status=QueueAssignment.Status.CLAIMED
        ).update(status=QueueAssignment.Status.EXPIRED, done_at=now)
    )


def queue_next(*, queue: AnnotationQueue, user) -> QueueAssignment | None:
    """The caller's current item, claiming the next free one if they hold none; None
    when nothing is left for them. The assignment comes with its item, step and trace.

    Safe under concurrency: an item is claimed by a conditional update of its claim
    count, so no more than ``overlap`` people ever hold it, and each at most once (a
    unique constraint). A pull-next claim older than TOOLTRAIL_ANNOTATION_CLAIM_MINUTES
    is taken over by the next annotator who asks (its holder's assignment becomes
    ``expired``); the item's claim count does not change.
    """
    with transaction.atomic():
        return _queue_claim(queue=queue, user=user)


def _queue_claim(*, queue: AnnotationQueue, user) -> QueueAssignment | None:
    """queue_next's work; the caller holds the transaction."""
    now = timezone.now()
    own = (
        QueueAssignment.objects.filter(queue=queue, user=user, status__in=QueueAssignment.OPEN)
        .order_by("position")
        .select_related("item__step", "item__trace", "item__suggestion__category")
        .first()
    )
    if own is not None:
        if own.claimed_at is None:
            own.claimed_at = now
            own.save(update_fields=["claimed_at"])
        return own
    if queue.assignment == AnnotationQueue.Assignment.ROUND_ROBIN:
        return None
    cutoff = claim_cutoff(now)
    for _attempt in range(20):
        item = _claim_candidate(queue, user, cutoff)
        if item is None:
            return None
        if item.is_full:
            # Chosen for its expired claim: one holder out, one in; claims unchanged.
            taken = cutoff is not None and _claim_take_over(
                item=item, user=user, cutoff=cutoff, now=now
            )
        else:
            taken = QueueItem.objects.filter(pk=item.pk, claims__lt=queue.overlap).update(
                claims=F("claims") + 1,
                is_full=Case(
                    When(claims__gte=queue.overlap - 1, then=Value(True)), default=Value(False)
                ),
            )
        if taken:
            return QueueAssignment.objects.create(
                item=item,
                queue=queue,
                user=user,
                position=item.position,
                status=QueueAssignment.Status.CLAIMED,
                claimed_at=now,
            )
    return None


def queue_item_label(
    *,
    queue: AnnotationQueue,
    assignment: QueueAssignment,
    user,
    verdict: str,
    category: str | None = None,
    note: str = "",
    corrected_call: dict[str, Any] | None = None,
    version: int | None = None,
    claim_next: bool = True,
) -> tuple[Annotation, QueueAssignment | None]:
    """One key press of the annotator: save their label on the item ``assignment``
    holds (read with ``item__step__trace``) and, with ``claim_next``, claim their next
    item, in one transaction (one commit). Checks as annotation_save does; raises
    LabelError, LabelConflict or ClaimExpired (the claim was taken over) with nothing
    saved."""
    if assignment.status == QueueAssignment.Status.EXPIRED:
        raise ClaimExpired(_claim_lost_message(user=user, item_id=assignment.item_id))
    step = assignment.item.step
    checked = _label_check(
        trace_id=step.trace_id,
        step_seq=step.seq,
        verdict=verdict,
        category=category,
        note=note,
        corrected_call=corrected_call,
        score=None,
        queue_id=None,
        step=step,
    )
    checked.queue = queue
    with transaction.atomic():
        annotation = _annotation_write(
            user=user, checked=checked, version=version, role=Annotation.Role.HUMAN
        )
        following = _queue_claim(queue=queue, user=user) if claim_next else None
    return annotation, following


def queue_skip(*, queue: AnnotationQueue, user, item_id: int) -> None:
    """Pass on an item: it leaves the caller's list and (pull-next) frees its slot."""
    with transaction.atomic():
        assignment = (
            QueueAssignment.objects.select_for_update()
            .filter(queue=queue, user=user, item_id=item_id, status__in=QueueAssignment.OPEN)
            .first()
        )
        if assignment is None:
            if QueueAssignment.objects.filter(
                queue=queue, user=user, item_id=item_id, status=QueueAssignment.Status.EXPIRED
            ).exists():
                raise QueueError(_claim_lost_message(user=user, item_id=item_id))
            raise QueueError("you hold no such item in this queue")
        assignment.status = QueueAssignment.Status.SKIPPED
        assignment.done_at = timezone.now()
        assignment.save(update_fields=["status", "done_at"])
        if queue.assignment == AnnotationQueue.Assignment.PULL_NEXT:
            QueueItem.objects.filter(pk=item_id).update(claims=F("claims") - 1, is_full=False)


def queue_previous(*, queue: AnnotationQueue, user, before: int | None) -> QueueAssignment | None:
    """The caller's last finished (or skipped) item before position ``before``, to go back to."""
    qs = QueueAssignment.objects.filter(
        queue=queue,
        user=user,
        status__in=(QueueAssignment.Status.DONE, QueueAssignment.Status.SKIPPED),
    )
    if before is not None:
        qs = qs.filter(position__lt=before)
    return qs.select_related("item").order_by("-position").first()


# --- suggestions ------------------------------------------------------------------------

SUGGEST_TASK = "agents.tasks.queue_suggest_task"


def queue_suggestions_request(*, queue: AnnotationQueue) -> None:
    """Ask the queue's judge for suggestions, on a worker, once this commits. The task
    lives with the model backends (agents); it is named, not imported: traces is a leaf."""
    if not queue.judge_endpoint:
        raise QueueError("this queue names no judge endpoint")
    from celery import current_app

    transaction.on_commit(lambda: current_app.send_task(SUGGEST_TASK, args=[queue.id]))


def suggestion_record(
    *,
    item: QueueItem,
    endpoint: str,
    verdict: str,
    category: str | None = None,
    corrected_call: dict[str, Any] | None = None,
    rationale: str = "",
) -> Suggestion:
    """Store (or replace) the judge's suggestion for an item. A category or corrected
    call the judge got wrong is dropped rather than stored; a bad verdict is an error."""
    if verdict not in Verdict.values:
        raise LabelError(f"the judge answered an unknown verdict {verdict!r}")
    try:
        cat = category_get(category)
    except LabelError:
        cat = None
    call = None
    if corrected_call:
        try:
            call = corrected_call_check(step=item.step, corrected_call=corrected_call)
        except LabelError:
            call = None
    suggestion, _ = Suggestion.objects.update_or_create(
        item=item,
        defaults={
            "queue_id": item.queue_id,
            "step_id": item.step_id,
            "endpoint": endpoint,
            "verdict": verdict,
            "category": cat,
            "corrected_call": call,
            "rationale": rationale[:2000],
        },
    )
    return suggestion
