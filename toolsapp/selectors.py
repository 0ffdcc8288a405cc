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


def tool_get(*, name: str, source: str = "") -> Tool:
    """The tool named ``name`` in ``source``: ``""`` for Python and code tools, or an
    OpenAPI source / MCP server, given as ``openapi:<name>``/``mcp:<name>`` or by its bare
    name (tried as an MCP server, then an OpenAPI source). Raises Tool.DoesNotExist."""
    if not source or ":" in source:
        return Tool.objects.select_related("mcp_server").get(name=name, source=source)
    for prefix in ("mcp:", "openapi:"):
        tool = (
            Tool.objects.select_related("mcp_server")
            .filter(name=name, source=prefix + source)
            .first()
        )
        if tool is not None:
            return tool
    raise Tool.DoesNotExist(f"no tool {name!r} in source {source!r}")
