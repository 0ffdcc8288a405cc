"""Pages for MCP import (with a preview before anything is saved) and for approving code
tools. Kept apart from ``views.py`` (the tool list and detail pages)."""

from __future__ import annotations

import json

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from .codetools import CodeToolError, code_tool_activate
from .mcpclient import SESSIONS, McpError
from .mcpservers import McpServerError, mcp_server_preview, mcp_server_register, mcp_server_sync
from .models import Tool


def _forbidden(request: HttpRequest, what: str) -> HttpResponse:
    return render(request, "toolsapp/forbidden.html", {"what": what}, status=403)


def _parse_env(text: str) -> dict[str, str]:
    env = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise McpServerError(f"environment line {number} is not KEY=VALUE: {line[:80]!r}")
        env[key.strip()] = value
    return env


def mcp_import_view(request: HttpRequest) -> HttpResponse:
    """GET: the form. POST ``action=preview``: connect, list the tools and show what a
    sync would create, update and deactivate (nothing saved). POST ``action=save``: sync."""
    if not request.user.has_perm("toolsapp.add_mcpserver"):
        return _forbidden(request, "import MCP servers")
    form = {
        "name": request.POST.get("name", "").strip(),
        "transport": request.POST.get("transport", "stdio"),
        "command": request.POST.get("command", "").strip(),
        "url": request.POST.get("url", "").strip(),
        "env": request.POST.get("env", ""),
    }
    context = {"form": form, "plan": None, "error": ""}
    if request.method != "POST":
        return render(request, "toolsapp/mcp_import.html", context)
    try:
        server = mcp_server_register(
            name=form["name"],
            command=form["command"] if form["transport"] == "stdio" else "",
            url=form["url"] if form["transport"] == "http" else "",
            env=_parse_env(form["env"]),
        )
        if request.POST.get("action") == "save":
            plan = mcp_server_sync(server=server)
            summary = plan.summary()
            messages.success(
                request,
                f"MCP server {server.name!r} synced: {summary['tools']} tools, "
                f"{summary['added']} added, {summary['updated']} updated, "
                f"{summary['deactivated']} deactivated.",
            )
            return redirect("toolsapp:tool_list")
        context["plan"] = mcp_server_preview(server=server)
        context["exists"] = server.pk is not None
    except (McpError, McpServerError) as exc:
        context["error"] = str(exc)
        return render(request, "toolsapp/mcp_import.html", context, status=400)
    finally:
        SESSIONS.close()  # a page's session is not worth keeping: the workers keep their own
    return render(request, "toolsapp/mcp_import.html", context)


def code_tool_view(request: HttpRequest, name: str) -> HttpResponse:
    """A code tool's source, stored tests and last results, and the Activate action."""
    tool = get_object_or_404(Tool, name=name, source="", kind=Tool.Kind.CODE)
    config = tool.config or {}
    return render(
        request,
        "toolsapp/code_tool.html",
        {
            "tool": tool,
            "source": config.get("source", ""),
            "tests": [
                {"arguments": json.dumps(t["arguments"]), "expected": json.dumps(t["expected"])}
                for t in config.get("tests", [])
            ],
            "last_test": config.get("last_test"),
            "schema": json.dumps(tool.parameters, indent=2),
            "can_activate": request.user.has_perm("toolsapp.change_tool"),
        },
    )


@require_POST
def code_tool_activate_view(request: HttpRequest, name: str) -> HttpResponse:
    tool = get_object_or_404(Tool, name=name, source="", kind=Tool.Kind.CODE)
    if not request.user.has_perm("toolsapp.change_tool"):
        return _forbidden(request, "activate tools")
    try:
        results = code_tool_activate(tool=tool)
        messages.success(request, f"All {len(results)} test cases passed: {tool.name} is active.")
    except CodeToolError as exc:
        messages.error(request, str(exc))
    return redirect("toolsapp:code_tool", name=tool.name)
