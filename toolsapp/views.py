from __future__ import annotations

import json

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from .models import Tool
from .selectors import tool_list, tool_search_rank

SEARCH_RESULTS = 50


def tool_list_view(request: HttpRequest) -> HttpResponse:
    tools = tool_list(kind=request.GET.get("kind") or None)
    # ?q= ranks the (filtered) tools by the retrieval index agents use, best first.
    query = request.GET.get("q", "").strip()[:500]
    if query:
        tools = tool_search_rank(query=query, tools=tools, k=SEARCH_RESULTS)
    return render(request, "toolsapp/tool_list.html", {"tools": tools, "q": query})


def tool_detail_view(request: HttpRequest, name: str) -> HttpResponse:
    # Names are unique within a source; ?source= picks one ("" is Python and code tools).
    tool = get_object_or_404(Tool, name=name, source=request.GET.get("source", ""))
    return render(
        request,
        "toolsapp/tool_detail.html",
        {
            "tool": tool,
            "schema": json.dumps(tool.parameters, indent=2),
            "toolsets": tool.toolsets.all(),
        },
    )
