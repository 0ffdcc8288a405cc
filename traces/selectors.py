"""Reads of traces and steps."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from django.db import connection
from django.db.models import (
    DurationField,
    Exists,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    QuerySet,
    TextField,
    Value,
)
from django.db.models.functions import Cast, Coalesce, Concat
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from .annotation_models import Annotation, Verdict
from .models import SavedFilter, Step, StepBlob, Trace, TraceTag


def trace_get_for_user(*, user, trace_id: uuid.UUID | str) -> Trace:
    """The trace, if ``user`` may read it (raises Trace.DoesNotExist otherwise).

    Every signed-in role reads every trace today; this is the one place the pages,
    the API and the websockets ask, so narrowing it later narrows them all.
    """
    if user is None or not user.is_authenticated:
        raise Trace.DoesNotExist("sign in to read traces")
    return Trace.objects.get(pk=trace_id)


def trace_list(*, status: str | None = None, agent_slug: str | None = None) -> QuerySet[Trace]:
    qs = Trace.objects.all()
    if status:
        qs = qs.filter(status=status)
    if agent_slug:
        qs = qs.filter(agent_slug=agent_slug)
    return qs.order_by("-created_at")


class FilterError(ValueError):
    """A trace-list filter that cannot be read; the message says which and why."""


@dataclass(frozen=True)
class TraceFilters:
    """What the trace list (page and ``GET /api/traces``) can be narrowed by."""

    status: str = ""
    agent: str = ""
    endpoint: str = ""
    tool: str = ""
    error_kind: str = ""
    tag: str = ""
    q: str = ""
    otel_trace_id: str = ""
    since: datetime | None = None
    until: datetime | None = None
    min_duration: float | None = None  # seconds
    max_duration: float | None = None
    min_tokens: int | None = None
    max_tokens: int | None = None
    annotation: str = ""  # one of ANNOTATION_STATES

    FIELDS = [
        "status",
        "agent",
        "endpoint",
        "tool",
        "error_kind",
        "tag",
        "q",
        "otel_trace_id",
        "since",
        "until",
        "min_duration",
        "max_duration",
        "min_tokens",
        "max_tokens",
        "annotation",
    ]

    def as_query(self) -> dict[str, str]:
        """The non-empty filters as query parameters (for links and saved filters)."""
        out = {}
        for name in self.FIELDS:
            value = getattr(self, name)
            if value in (None, ""):
                continue
            out[name] = value.isoformat() if isinstance(value, datetime) else str(value)
        return out

    @property
    def active(self) -> bool:
        return bool(self.as_query())


# The trace list's ``annotation`` filter: what people's labels (human or gold, on any
# step or on the trace itself) say about a trace.
ANNOTATION_STATES = {
    "any": "labelled",
    "none": "not labelled",
    "good": "labelled, no bad verdict",
    "bad": "a bad verdict",
    "has_correction": "a corrected call",
}


def _parse_when(name: str, raw: str) -> datetime:
    value = parse_datetime(raw)
    if value is None:
        day = parse_date(raw)
        if day is None:
            raise FilterError(f"{name} must be a date (YYYY-MM-DD) or date and time")
        value = datetime.combine(day, time.min)
        if name == "until":
            value += timedelta(days=1)
    if timezone.is_naive(value):
        value = timezone.make_aware(value, UTC)
    return value


def trace_filters_parse(params) -> TraceFilters:
    """Read filters from a query dict. Raises FilterError with a clear message."""
    values: dict = {}
    for name in TraceFilters.FIELDS:
        raw = (params.get(name) or "").strip()
        if not raw:
            continue
        if len(raw) > 500:
            raise FilterError(f"{name} is too long (500 characters at most)")
        if name in ("since", "until"):
            values[name] = _parse_when(name, raw)
        elif name in ("min_duration", "max_duration"):
            try:
                values[name] = float(raw)
            except ValueError:
                raise FilterError(f"{name} must be a number of seconds") from None
            if not 0 <= values[name] < 10**9:
                raise FilterError(f"{name} must be between 0 and 10⁹ seconds")
        elif name in ("min_tokens", "max_tokens"):
            if not (raw.isascii() and raw.isdigit() and len(raw) < 12):
                raise FilterError(f"{name} must be a whole number")
            values[name] = int(raw)
        elif name == "status" and raw not in Trace.Status.values:
            raise FilterError(f"status must be one of {', '.join(Trace.Status.values)}")
        elif name == "annotation" and raw not in ANNOTATION_STATES:
            raise FilterError(f"annotation must be one of {', '.join(ANNOTATION_STATES)}")
        else:
            values[name] = raw
    return TraceFilters(**values)


def step_search_text():
    """A step's searchable text (input, output, error) as one expression: the selector
    searches it, and on PostgreSQL the GIN index of migration 0004 is built on exactly
    this expression (change both together)."""
    blank, space = Value("", output_field=TextField()), Value(" ", output_field=TextField())
    return Concat(
        Coalesce(Cast("input", TextField()), blank),
        space,
        Coalesce(Cast("output", TextField()), blank),
        space,
        Cast("error", TextField()),
        output_field=TextField(),
    )


def step_search_vector():
    from django.contrib.postgres.search import SearchVector

    return SearchVector(step_search_text(), config="simple")


def _search_steps(q: str) -> QuerySet[Step]:
    """Steps whose input, output or error match ``q``: PostgreSQL full-text search there
    (indexed); elsewhere (SQLite) every word must appear, case-insensitively, in them."""
    if connection.vendor == "postgresql":
        from django.contrib.postgres.search import SearchQuery

        return Step.objects.annotate(search=step_search_vector()).filter(
            search=SearchQuery(q, search_type="websearch", config="simple")
        )
    qs = Step.objects.annotate(search_text=step_search_text())
    for word in q.split()[:10]:
        qs = qs.filter(search_text__icontains=word)
    return qs


def trace_filter(*, filters: TraceFilters) -> QuerySet[Trace]:
    """The traces matching ``filters`` (unordered)."""
    f = filters
    qs = Trace.objects.all()
    if f.status:
        qs = qs.filter(status=f.status)
    if f.agent:
        qs = qs.filter(agent_slug=f.agent)
    if f.endpoint:
        qs = qs.filter(metadata__endpoint=f.endpoint)
    if f.otel_trace_id:
        qs = qs.filter(otel_trace_id=f.otel_trace_id.lower())
    if f.tag:
        qs = qs.filter(Exists(TraceTag.objects.filter(trace=OuterRef("pk"), name=f.tag)))
    if f.tool:
        qs = qs.filter(
            Exists(Step.objects.filter(trace=OuterRef("pk"), kind=Step.Kind.TOOL_CALL, name=f.tool))
        )
    if f.error_kind:
        qs = qs.filter(
            Exists(
                Step.objects.filter(
                    trace=OuterRef("pk"), status=Step.Status.ERROR, name=f.error_kind
                )
            )
        )
    if f.since:
        qs = qs.filter(created_at__gte=f.since)
    if f.until:
        qs = qs.filter(created_at__lt=f.until)
    if f.min_duration is not None or f.max_duration is not None:
        qs = qs.annotate(
            duration=ExpressionWrapper(
                F("ended_at") - F("started_at"), output_field=DurationField()
            )
        )
        if f.min_duration is not None:
            qs = qs.filter(duration__gte=timedelta(seconds=f.min_duration))
        if f.max_duration is not None:
            qs = qs.filter(duration__lte=timedelta(seconds=f.max_duration))
    if f.min_tokens is not None or f.max_tokens is not None:
        qs = qs.annotate(tokens=F("prompt_tokens") + F("completion_tokens"))
        if f.min_tokens is not None:
            qs = qs.filter(tokens__gte=f.min_tokens)
        if f.max_tokens is not None:
            qs = qs.filter(tokens__lte=f.max_tokens)
    if f.q:
        qs = qs.filter(
            Exists(_search_steps(f.q).filter(trace=OuterRef("pk"))) | Q(input__icontains=f.q)
        )
    if f.annotation:
        qs = _filter_by_annotation(qs, f.annotation)
    return qs


def _filter_by_annotation(qs: QuerySet[Trace], state: str) -> QuerySet[Trace]:
    """Traces whose labels are in ``state`` (ANNOTATION_STATES): EXISTS over the
    trace's labels, by the annotation table's trace index."""
    labels = Annotation.objects.filter(trace=OuterRef("pk"))
    bad = Exists(labels.filter(verdict=Verdict.BAD))
    if state == "any":
        return qs.filter(Exists(labels))
    if state == "none":
        return qs.filter(~Exists(labels))
    if state == "good":
        return qs.filter(Exists(labels.filter(verdict=Verdict.GOOD)) & ~bad)
    if state == "bad":
        return qs.filter(bad)
    if state == "has_correction":
        return qs.filter(Exists(labels.filter(corrected_call__isnull=False)))
    raise FilterError(f"annotation must be one of {', '.join(ANNOTATION_STATES)}")


@dataclass
class TracePage:
    traces: list[Trace]
    next_cursor: str = ""  # pass as ``before`` for older traces
    prev_cursor: str = ""  # pass as ``after`` for newer traces


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _cursor_of(trace: Trace) -> str:
    """``<microseconds since 1970>_<id>``: URL-safe as it is."""
    micros = (trace.created_at - _EPOCH) // timedelta(microseconds=1)
    return f"{micros}_{trace.id}"


def _cursor_parse(raw: str) -> tuple[datetime, uuid.UUID]:
    try:
        micros, _, ident = raw.partition("_")
        if not (micros.isascii() and micros.isdigit() and len(micros) < 20):
            raise ValueError
        return _EPOCH + timedelta(microseconds=int(micros)), uuid.UUID(ident)
    except (ValueError, OverflowError):
        raise FilterError("the page cursor is not valid; start again from the first page") from None


def trace_page(
    *, filters: TraceFilters, before: str = "", after: str = "", limit: int = 50
) -> TracePage:
    """One page of the filtered list, newest first, by keyset (created_at, id): page
    500 costs what page 1 does. ``before``/``after`` are cursors from an earlier page."""
    qs = trace_filter(filters=filters)
    if after:
        when, ident = _cursor_parse(after)
        rows = list(
            qs.filter(Q(created_at__gt=when) | Q(created_at=when, id__gt=ident)).order_by(
                "created_at", "id"
            )[: limit + 1]
        )
        more_newer = len(rows) > limit
        rows = rows[:limit][::-1]
        return TracePage(
            traces=rows,
            next_cursor=_cursor_of(rows[-1]) if rows else "",
            prev_cursor=_cursor_of(rows[0]) if rows and more_newer else "",
        )
    if before:
        when, ident = _cursor_parse(before)
        qs = qs.filter(Q(created_at__lt=when) | Q(created_at=when, id__lt=ident))
    rows = list(qs.order_by("-created_at", "-id")[: limit + 1])
    more_older = len(rows) > limit
    rows = rows[:limit]
    return TracePage(
        traces=rows,
        next_cursor=_cursor_of(rows[-1]) if rows and more_older else "",
        prev_cursor=_cursor_of(rows[0]) if rows and before else "",
    )


def trace_filter_choices() -> dict[str, list[str]]:
    """Values the list's filter menus offer."""
    return {
        "agents": list(
            Trace.objects.exclude(agent_slug="")
            .values_list("agent_slug", flat=True)
            .distinct()
            .order_by("agent_slug")[:200]
        ),
        "tags": list(
            TraceTag.objects.values_list("name", flat=True).distinct().order_by("name")[:200]
        ),
    }


def saved_filters_for_user(*, user) -> QuerySet[SavedFilter]:
    return SavedFilter.objects.filter(user=user)


def step_get(*, trace_id: uuid.UUID | str, seq: int) -> Step | None:
    """One step by its number, with its parent (the detail panel names it)."""
    return Step.objects.filter(trace_id=trace_id, seq=seq).select_related("parent").first()


def steps_after(
    *, trace_id: uuid.UUID | str, after: int = 0, limit: int | None = None
) -> list[Step]:
    """Steps with ``seq > after`` in order: the cursor read behind the websocket and
    the fallback endpoint."""
    qs = Step.objects.filter(trace_id=trace_id, seq__gt=after).order_by("seq")
    if limit is not None:
        qs = qs[:limit]
    return list(qs)


def steps_for_tree(
    *, trace_id: uuid.UUID | str, after: int = 0, limit: int | None = None
) -> list[Step]:
    """Steps of a trace after ``after`` (at most ``limit``), loaded for drawing the tree:
    without the model calls' inputs (the whole conversation each time, the bulk of a
    long trace's data), which the tree never shows. Tool calls and errors keep theirs:
    their summary is it."""
    qs = (
        Step.objects.filter(trace_id=trace_id, seq__gt=after)
        .defer("input", "created_at", "tool_call_id")
        .order_by("seq")
    )
    steps = list(qs[:limit] if limit is not None else qs)
    wanted = (Step.Kind.TOOL_CALL, Step.Kind.ERROR)
    ids = [s.id for s in steps if s.kind in wanted]
    inputs = dict(Step.objects.filter(id__in=ids).values_list("id", "input")) if ids else {}
    for step in steps:
        if step.kind in wanted:
            step.input = inputs.get(step.id)
    return steps


def step_depths_before(*, trace_id: uuid.UUID | str, steps: list[Step]) -> dict[int, int]:
    """Depths of the earlier steps that ``steps`` hang under, for steps saved without a
    depth (another source's bulk path): walked up from the parents, one query."""
    missing = [
        s.metadata.get("parent_seq")
        for s in steps
        if not isinstance(s.metadata.get("depth"), int) and s.metadata.get("parent_seq")
    ]
    first = steps[0].seq if steps else 0
    if not any(p is not None and p < first for p in missing):
        return {}
    parents = dict(
        Step.objects.filter(trace_id=trace_id, seq__lt=first).values_list("seq", "parent__seq")
    )
    depths: dict[int, int] = {}

    def depth(seq: int) -> int:
        chain = []
        while seq is not None and seq not in depths and len(chain) < 100_000:
            chain.append(seq)
            seq = parents.get(seq)
        base = depths.get(seq, -1) if seq is not None else -1
        for n in reversed(chain):
            base += 1
            depths[n] = base
        return depths[chain[0]] if chain else base

    for p in missing:
        if p is not None and p < first:
            depth(p)
    return depths


def steps_matching(*, trace_id: uuid.UUID | str, q: str, limit: int = 1000) -> list[int]:
    """Seqs of the trace's steps whose name, input, output or error match ``q``."""
    q = q.strip()
    if not q:
        return []
    found = set(_search_steps(q).filter(trace_id=trace_id).values_list("seq", flat=True)[:limit])
    found.update(
        Step.objects.filter(trace_id=trace_id, name__icontains=q).values_list("seq", flat=True)[
            :limit
        ]
    )
    return sorted(found)[:limit]


def model_call_conversation(*, step: Step) -> list[dict] | None:
    """The whole conversation a model call was sent.

    Our runner stores on each model call only the messages added since the previous
    one (``earlier_messages`` says how many came before); this joins the pieces of
    every model call up to ``step``. Steps that hold the whole list (other sources)
    are returned as they are; None when the pieces do not add up.
    """
    data = step.input if isinstance(step.input, dict) else {}
    messages = data.get("messages")
    if not isinstance(messages, list):
        return None
    if not data.get("earlier_messages"):
        return messages
    if not isinstance(data["earlier_messages"], int):
        return None
    earlier_inputs = {
        seq: value if isinstance(value, dict) else {}  # capped or foreign: no pieces
        for seq, value in Step.objects.filter(
            trace_id=step.trace_id, kind=Step.Kind.MODEL_CALL, seq__lt=step.seq
        ).values_list("seq", "input")
    }
    pieces: list[list] = []
    if (
        isinstance(data.get("earlier_from_step"), int)
        and data["earlier_from_step"] in earlier_inputs
    ):
        # Follow this conversation's own chain: a strategy may hold several
        # conversations in one trace (planner and caller, search branches).
        cursor = data["earlier_from_step"]
        seen: set = set()
        # Stored data may loop or hold anything: follow only numbers, each once.
        while isinstance(cursor, int) and cursor in earlier_inputs and cursor not in seen:
            seen.add(cursor)
            earlier = earlier_inputs[cursor] or {}
            messages_piece = earlier.get("messages")
            pieces.append(messages_piece if isinstance(messages_piece, list) else [])
            cursor = earlier.get("earlier_from_step")
        pieces.reverse()
    else:
        pieces = [earlier_inputs[seq].get("messages") or [] for seq in sorted(earlier_inputs)]
        pieces = [piece if isinstance(piece, list) else [] for piece in pieces]
    conversation: list[dict] = [m for piece in pieces for m in piece]
    conversation = conversation[: data["earlier_messages"]]
    if len(conversation) != data["earlier_messages"]:
        return None
    return conversation + messages


def calls_in_progress(*, trace_id: uuid.UUID | str) -> list[dict]:
    """Model and tool calls of the trace that started and have not ended (oldest
    first); none once the trace is finished."""
    from .calls import calls_read

    if Trace.objects.filter(pk=trace_id, status__in=Trace.FINISHED).exists():
        return []
    return calls_read(trace_id=trace_id)


def trace_tool_calls(*, trace_id: uuid.UUID | str) -> list:
    """The trace's tool calls in order, each with its result (or error): what the diff
    aligns."""
    from .diff import ToolCall

    calls = {
        s.id: ToolCall(seq=s.seq, name=s.name, arguments=s.input)
        for s in Step.objects.filter(trace_id=trace_id, kind=Step.Kind.TOOL_CALL).only(
            "id", "seq", "name", "input"
        )
    }
    for parent_id, kind, output, error in Step.objects.filter(
        trace_id=trace_id, parent_id__in=list(calls)
    ).values_list("parent_id", "kind", "output", "error"):
        call = calls[parent_id]
        if kind == Step.Kind.ERROR:
            call.error = error
        else:
            call.result = output
    return sorted(calls.values(), key=lambda c: c.seq)


def tool_call_stats(
    *, name: str, source: str = "", tool_id: int | None = None, limit: int = 50
) -> dict:
    """The latest calls of one tool, read from the steps: each call with its outcome and
    latency, and over them the success rate and median/p95 latency.

    Steps name tools by name (this app knows no tool model); our runner also stamps the
    tool's id and source in the call's metadata, which is matched first. Calls recorded
    without it (the SDK, OTLP, older runs) match by name alone.
    """
    qs = Step.objects.filter(kind=Step.Kind.TOOL_CALL)
    stamped = (
        Q(metadata__tool__id=tool_id)
        if tool_id is not None
        else Q(metadata__tool__name=name, metadata__tool__source=source)
    )
    qs = qs.filter(stamped | (Q(name=name) & ~Q(metadata__has_key="tool")))
    calls = list(qs.select_related("trace").order_by("-created_at", "-id")[:limit])
    outcomes = {
        s.parent_id: s
        for s in Step.objects.filter(
            parent__in=calls, kind__in=[Step.Kind.TOOL_RESULT, Step.Kind.ERROR]
        ).order_by("seq")
    }
    rows, latencies = [], []
    for call in calls:
        outcome = outcomes.get(call.id)
        latency = None
        if outcome is not None:
            start = outcome.started_at or call.created_at
            end = outcome.ended_at or outcome.created_at
            latency = max(0.0, (end - start).total_seconds() * 1000)
            latencies.append(latency)
        rows.append(
            {
                "call": call,
                "ok": None if outcome is None else outcome.kind == Step.Kind.TOOL_RESULT,
                "error": outcome.error if outcome is not None else "",
                "latency_ms": latency,
            }
        )
    finished = [r for r in rows if r["ok"] is not None]
    latencies.sort()

    def pct(p: float) -> float | None:
        if not latencies:
            return None
        return latencies[min(len(latencies) - 1, int(round(p * (len(latencies) - 1))))]

    return {
        "calls": rows,
        "count": len(rows),
        "succeeded": sum(1 for r in finished if r["ok"]),
        "success_rate": (sum(1 for r in finished if r["ok"]) / len(finished) if finished else None),
        "p50_ms": pct(0.5),
        "p95_ms": pct(0.95),
    }


def step_blob_get(*, step: Step, field: str) -> StepBlob | None:
    """The whole value of a step field that its row keeps only a preview of."""
    return StepBlob.objects.filter(step=step, field=field).first()
