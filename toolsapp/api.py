"""The tools part of the JSON API: list and read tools and toolsets."""

from __future__ import annotations

from django.http import HttpRequest
from ninja import Router, Schema

from tooltrail.api import ERRORS, ApiError, ErrorOut

from .models import Tool, Toolset

router = Router()


class ToolOut(Schema):
    id: int
    name: str
    source: str
    kind: str
    status: str
    description: str
    parameters: dict


class ToolsetOut(Schema):
    slug: str
    name: str
    description: str
    tools: list[str]


class ToolPage(Schema):
    items: list[ToolOut]
    next: str | None = None


class ToolsetPage(Schema):
    items: list[ToolsetOut]
    next: str | None = None


def tool_payload(tool: Tool) -> dict:
    return {
        "id": tool.id,
        "name": tool.name,
        "source": tool.source,
        "kind": tool.kind,
        "status": tool.status,
        "description": tool.description,
        "parameters": tool.parameters,
    }


def toolset_payload(toolset: Toolset) -> dict:
    return {
        "slug": toolset.slug,
        "name": toolset.name,
        "description": toolset.description,
        "tools": [t.name for t in toolset.tools.all()],
    }


@router.get(
    "/tools",
    response={200: ToolPage, 400: ErrorOut, **ERRORS},
    tags=["tools"],
    summary="List tools",
)
def list_tools(request: HttpRequest, q: str = "", status: str = ""):
    """``q`` keeps the tools whose name or description holds every word; ``status`` one
    of active, draft, inactive."""
    from django.db.models import Q

    qs = Tool.objects.order_by("name", "source")
    for word in q.split():
        qs = qs.filter(Q(name__icontains=word) | Q(description__icontains=word))
    if status:
        if status not in Tool.Status.values:
            raise ApiError(f"status must be one of {', '.join(Tool.Status.values)}")
        qs = qs.filter(status=status)
    return {"items": [tool_payload(t) for t in qs], "next": None}


@router.get(
    "/tools/{int:tool_id}", response={200: ToolOut, **ERRORS}, tags=["tools"], summary="Read a tool"
)
def get_tool(request: HttpRequest, tool_id: int):
    tool = Tool.objects.filter(pk=tool_id).first()
    if tool is None:
        raise ApiError(f"no tool with id {tool_id}", 404)
    return tool_payload(tool)


@router.get(
    "/toolsets", response={200: ToolsetPage, **ERRORS}, tags=["toolsets"], summary="List toolsets"
)
def list_toolsets(request: HttpRequest):
    toolsets = Toolset.objects.prefetch_related("tools")
    return {"items": [toolset_payload(t) for t in toolsets], "next": None}


@router.get(
    "/toolsets/{slug:slug}",
    response={200: ToolsetOut, **ERRORS},
    tags=["toolsets"],
    summary="Read a toolset",
)
def get_toolset(request: HttpRequest, slug: str):
    toolset = Toolset.objects.prefetch_related("tools").filter(slug=slug).first()
    if toolset is None:
        raise ApiError(f"no toolset with slug {slug!r}", 404)
    return toolset_payload(toolset)
