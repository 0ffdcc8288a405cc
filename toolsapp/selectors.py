from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.db.models import QuerySet

from .models import Tool, Toolset
from .retrieval.search import ToolSearch


def toolset_tools(*, toolset: Toolset | None) -> list[Tool]:
    """The active tools of a toolset (none for no toolset)."""
    if toolset is None:
        return []
    return list(toolset.tools.filter(status=Tool.Status.ACTIVE).order_by("name"))


def tool_list(*, kind: str | None = None) -> QuerySet[Tool]:
    qs = Tool.objects.all()
    return qs.filter(kind=kind) if kind else qs


def tool_search_rank(
    *,
    query: str,
    tools: QuerySet[Tool] | None = None,
    allowed: Iterable[int] | None = None,
    k: int = 50,
    method: str | None = None,
) -> list[Tool]:
    """The ``k`` tools that best match ``query``, best first, from the retrieval index
    (BM25 + MiniLM, fused). ``tools`` (a queryset) or ``allowed`` (ids) limits the search;
    neither: every tool. Each tool gets ``search_score`` and ``search_ranks`` (its rank
    in each ranking that found it)."""
    from .retrieval.store import tool_index

    if tools is not None:
        allowed = list(tools.values_list("id", flat=True))
    hits = tool_index().search(
        query, k=k, method=method or settings.TOOLTRAIL_TOOL_SEARCH_METHOD, allowed=allowed
    )
    by_id = Tool.objects.in_bulk([h.key for h in hits])
    ranked = []
    for hit in hits:
        tool = by_id.get(hit.key)
        if tool is not None:  # deleted since the index last synced
            tool.search_score, tool.search_ranks = hit.score, hit.ranks
            ranked.append(tool)
    return ranked


@dataclass
class RunTools:
    """The tools a run starts with, and ``search`` when it must find the rest."""

    tools: list[Tool]
    search: ToolSearch | None = None


def run_tools(*, toolset: Toolset | None, query: str) -> RunTools:
    """The tools of a run. A toolset of at most ``TOOLTRAIL_TOOL_SEARCH_THRESHOLD`` active
    tools is offered whole; a larger one is offered as ``tool_search`` plus the
    ``TOOLTRAIL_TOOL_SEARCH_TOP_K`` tools that best match ``query`` (the user's request)."""
    threshold = settings.TOOLTRAIL_TOOL_SEARCH_THRESHOLD
    if toolset is None:
        return RunTools(tools=[])
    active = toolset.tools.filter(status=Tool.Status.ACTIVE)
    if threshold <= 0 or active.count() <= threshold:
        return RunTools(tools=toolset_tools(toolset=toolset))
    search = ToolSearch(
        allowed=list(active.values_list("id", flat=True)),
        k=settings.TOOLTRAIL_TOOL_SEARCH_TOP_K,
        method=settings.TOOLTRAIL_TOOL_SEARCH_METHOD,
    )
    return RunTools(tools=search.find(query), search=search)


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
