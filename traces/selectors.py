"""Reads of traces and steps."""

from __future__ import annotations

import uuid

from django.db.models import QuerySet

from .models import Step, Trace


def trace_get(*, trace_id: uuid.UUID | str) -> Trace:
    return Trace.objects.get(pk=trace_id)


def trace_list(*, status: str | None = None, agent_slug: str | None = None) -> QuerySet[Trace]:
    qs = Trace.objects.all()
    if status:
        qs = qs.filter(status=status)
    if agent_slug:
        qs = qs.filter(agent_slug=agent_slug)
    return qs.order_by("-created_at")


def steps_after(
    *, trace_id: uuid.UUID | str, after: int = 0, limit: int | None = None
) -> list[Step]:
    """Steps with ``seq > after`` in order: the cursor read behind the websocket and
    the fallback endpoint."""
    qs = Step.objects.filter(trace_id=trace_id, seq__gt=after).order_by("seq")
    if limit is not None:
        qs = qs[:limit]
    return list(qs)


def step_tree(*, steps: list[Step]) -> list[tuple[Step, list]]:
    """Nest steps under their parents: ``[(step, [(child, [...]), ...]), ...]``.

    A step whose parent is not in ``steps`` is a root, so a partial page still renders.
    """
    children: dict[int | None, list[Step]] = {}
    ids = {s.id for s in steps}
    for step in steps:
        parent = step.parent_id if step.parent_id in ids else None
        children.setdefault(parent, []).append(step)

    def build(parent_id: int | None) -> list[tuple[Step, list]]:
        return [(s, build(s.id)) for s in children.get(parent_id, [])]

    return build(None)
