"""Reads of tools: a toolset's tools, the names a model sees, lookups by name and source,
and the filtered list the tool pages show."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.db import models
from django.db.models import QuerySet

from .models import HttpToolSource, McpServer, Tool, Toolset
from .retrieval.search import ToolSearch

# Source prefix → the model whose ``name`` a source of that kind is. A tool's ``source``
# is "<prefix>:<name>"; Python and code tools have none ("").
SOURCE_KINDS: dict[str, type[models.Model]] = {
    "openapi": HttpToolSource,
    "mcp": McpServer,
}


class ToolLookupError(Tool.DoesNotExist):
    """No such tool or source, or a name that matches more than one tool (a
    ``Tool.DoesNotExist``, so callers may catch either)."""


def toolset_tools(*, toolset: Toolset | None) -> list[Tool]:
    """The active tools of a toolset (none for no toolset)."""
    if toolset is None:
        return []
    return list(toolset.tools.filter(status=Tool.Status.ACTIVE).order_by("name", "source"))


def tool_list(
    *,
    kind: str | None = None,
    source: str | None = None,
    status: str | None = None,
) -> QuerySet[Tool]:
    """Tools filtered as the tool list page filters them (each filter optional; ``source``
    is a full key such as ``openapi:github``, or "-" for tools without a source)."""
    qs = Tool.objects.all()
    if kind:
        qs = qs.filter(kind=kind)
    if source:
        qs = qs.filter(source="" if source == "-" else source)
    if status:
        qs = qs.filter(status=status)
    return qs


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


def tool_sources() -> list[str]:
    """Every source key that has tools, for the list page's filter."""
    return sorted(
        Tool.objects.exclude(source="").values_list("source", flat=True).distinct().order_by()
    )


def source_key_resolve(*, source: str) -> str:
    """The ``Tool.source`` key for what a person typed: ``openapi:github``, ``mcp:git``,
    or a bare source name (``github``) that names exactly one OpenAPI source or MCP server;
    "" stays "" (Python and code tools). Raises ToolLookupError."""
    if source == "":
        return ""
    prefix, colon, name = source.partition(":")
    if colon:
        model = SOURCE_KINDS.get(prefix)
        if model is None:
            kinds = ", ".join(f"{p}:NAME" for p in SOURCE_KINDS)
            raise ToolLookupError(f"unknown source kind {prefix!r}: use {kinds}")
        if not model.objects.filter(name=name).exists():
            raise ToolLookupError(f"there is no {model._meta.verbose_name} named {name!r}")
        return source
    found = [
        f"{p}:{source}" for p, m in SOURCE_KINDS.items() if m.objects.filter(name=source).exists()
    ]
    if not found:
        raise ToolLookupError(f"there is no tool source named {source!r}")
    if len(found) > 1:
        raise ToolLookupError(f"{source!r} names several sources; say which: {', '.join(found)}")
    return found[0]


def tool_get(*, name: str, source: str | None = None) -> Tool:
    """One tool by name, within ``source`` when given (see source_key_resolve); without a
    source the name must be unique. Raises ToolLookupError."""
    if source is not None:
        key = source_key_resolve(source=source)
        tool = (
            Tool.objects.select_related("http_source", "mcp_server")
            .filter(name=name, source=key)
            .first()
        )
        if tool is None:
            where = f"in source {key!r}" if key else "among Python and code tools"
            raise ToolLookupError(f"there is no tool named {name!r} {where}")
        return tool
    tools = list(Tool.objects.select_related("http_source", "mcp_server").filter(name=name))
    if not tools:
        raise ToolLookupError(f"there is no tool named {name!r}")
    if len(tools) > 1:
        active = [t for t in tools if t.is_active]
        if len(active) == 1:
            return active[0]
        sources = ", ".join(repr(t.source) for t in tools)
        raise ToolLookupError(
            f"{len(tools)} tools are named {name!r} (sources {sources}); pass --source"
        )
    return tools[0]


def _prefixed(tool: Tool) -> str:
    # Anything with a name, parameters and openai_spec() passes (evaluations hand in
    # plain function specs); only tools have a source.
    source = getattr(tool, "source_label", "") or getattr(tool, "kind", "") or "tool"
    label = re.sub(r"[^a-zA-Z0-9_-]+", "_", source)
    name = f"{label}__{tool.name}"
    if len(name) > 64:
        digest = hashlib.sha1(name.encode()).hexdigest()[:8]
        name = f"{name[:55]}_{digest}"
    return name


def tools_by_model_name(*, tools: list[Tool]) -> dict[str, Tool]:
    """The name each tool is sent to the model under → the tool.

    A name unique within ``tools`` is sent as is; tools sharing a name (two APIs' ``getUser``)
    are sent as ``<source>__<name>`` (cut to 64 characters with a hash when long), and a
    name still taken gets ``_2``, ``_3``…; the order of ``tools`` is kept.
    """
    counts = Counter(t.name for t in tools)
    taken = {t.name for t in tools if counts[t.name] == 1}
    named: dict[str, Tool] = {}
    for tool in tools:
        if counts[tool.name] == 1:
            named[tool.name] = tool
            continue
        base = _prefixed(tool)
        candidate, n = base, 1
        while candidate in taken:
            n += 1
            candidate = f"{base[: 64 - len(str(n)) - 1]}_{n}"
        taken.add(candidate)
        named[candidate] = tool
    return named


def tool_openai_spec(*, tool: Tool, name: str | None = None) -> dict:
    """The tool as an OpenAI ``tools`` entry, under ``name`` (its model-facing name)."""
    spec = tool.openai_spec()
    if name and name != tool.name:
        spec["function"]["name"] = name
    return spec
