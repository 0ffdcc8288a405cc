"""Reads of traces and steps."""

from __future__ import annotations

import uuid

from django.db.models import QuerySet

from .models import Step, Trace


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
    earlier_inputs = dict(
        Step.objects.filter(
            trace_id=step.trace_id, kind=Step.Kind.MODEL_CALL, seq__lt=step.seq
        ).values_list("seq", "input")
    )
    pieces: list[list] = []
    if data.get("earlier_from_step") in earlier_inputs:
        # Follow this conversation's own chain: a strategy may hold several
        # conversations in one trace (planner and caller, search branches).
        cursor = data["earlier_from_step"]
        while cursor in earlier_inputs:
            earlier = earlier_inputs[cursor] or {}
            pieces.append(earlier.get("messages") or [])
            cursor = earlier.get("earlier_from_step")
        pieces.reverse()
    else:
        pieces = [
            (earlier_inputs[seq] or {}).get("messages") or [] for seq in sorted(earlier_inputs)
        ]
    conversation: list[dict] = [m for piece in pieces for m in piece]
    conversation = conversation[: data["earlier_messages"]]
    if len(conversation) != data["earlier_messages"]:
        return None
    return conversation + messages
