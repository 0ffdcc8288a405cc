"""Reads of traces and steps."""

from __future__ import annotations

import uuid

from django.db.models import Q, QuerySet

from .models import Step, StepBlob, Trace


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


def steps_for_tree(*, trace_id: uuid.UUID | str) -> list[Step]:
    """All steps of a trace, loaded for drawing the tree: without the model calls'
    inputs (the whole conversation each time, the bulk of a long trace's data), which
    the tree never shows. Tool calls and errors keep theirs: their summary is it."""
    steps = list(
        Step.objects.filter(trace_id=trace_id)
        .defer("input", "metadata", "created_at", "tool_call_id")
        .order_by("seq")
    )
    wanted = (Step.Kind.TOOL_CALL, Step.Kind.ERROR)
    inputs = dict(
        Step.objects.filter(trace_id=trace_id, kind__in=wanted).values_list("id", "input")
    )
    for step in steps:
        if step.kind in wanted:
            step.input = inputs.get(step.id)
    return steps


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


def traces_api_list(*, user, otel_trace_id: str = "", limit: int = 50) -> list[Trace]:
    """Traces for ``GET /api/traces``, newest first, that ``user`` may read (every
    signed-in role, as ``trace_get_for_user``)."""
    if user is None or not user.is_authenticated:
        return []
    qs = Trace.objects.all()
    if otel_trace_id:
        qs = qs.filter(otel_trace_id=otel_trace_id)
    return list(qs.order_by("-created_at", "-id")[:limit])


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
