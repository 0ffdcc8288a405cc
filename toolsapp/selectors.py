from __future__ import annotations

from django.db.models import QuerySet

from .models import Tool, Toolset


def toolset_tools(*, toolset: Toolset | None) -> list[Tool]:
    """The enabled tools of a toolset (none for no toolset)."""
    if toolset is None:
        return []
    return list(toolset.tools.filter(enabled=True).order_by("name"))


def tool_list(*, kind: str | None = None) -> QuerySet[Tool]:
    qs = Tool.objects.all()
    return qs.filter(kind=kind) if kind else qs
