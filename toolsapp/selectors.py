from __future__ import annotations

from django.db.models import QuerySet

from .models import Tool, Toolset


def toolset_tools(*, toolset: Toolset | None) -> list[Tool]:
    """The active tools of a toolset (none for no toolset)."""
    if toolset is None:
        return []
    return list(toolset.tools.filter(status=Tool.Status.ACTIVE).order_by("name"))


def tool_list(*, kind: str | None = None) -> QuerySet[Tool]:
    qs = Tool.objects.all()
    return qs.filter(kind=kind) if kind else qs
