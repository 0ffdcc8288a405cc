"""The tool-maker page: a model writes a code tool from a task and examples."""

from __future__ import annotations

import json

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from toolsapp.codetools import CodeToolError

from .models import ModelEndpoint
from .toolmaker import tool_make


def _examples(text: str) -> list:
    try:
        value = json.loads(text or "[]")
    except json.JSONDecodeError as exc:
        raise CodeToolError(
            f"examples are not valid JSON ({exc.msg} at line {exc.lineno})"
        ) from exc
    if not isinstance(value, list) or not all(isinstance(e, dict) for e in value):
        raise CodeToolError('examples must be a JSON list of {"arguments": {...}, "expected": ...}')
    return value


def tool_maker_view(request: HttpRequest) -> HttpResponse:
    """GET: the form. POST: the chosen endpoint writes the tool; it is tested in the
    sandbox and saved as a draft, and the page of the draft opens."""
    if not request.user.has_perm("toolsapp.add_tool"):
        return render(request, "toolsapp/forbidden.html", {"what": "make tools"}, status=403)
    endpoints = ModelEndpoint.objects.order_by("name")
    form = {
        "task": request.POST.get("task", ""),
        "examples": request.POST.get("examples", ""),
        "name": request.POST.get("name", "").strip(),
        "endpoint": request.POST.get("endpoint", ""),
    }
    context = {"form": form, "endpoints": endpoints, "error": ""}
    if request.method != "POST":
        return render(request, "agents/tool_maker.html", context)
    endpoint = endpoints.filter(pk=form["endpoint"]).first() if form["endpoint"].isdigit() else None
    try:
        if endpoint is None:
            raise CodeToolError("choose a model endpoint")
        made = tool_make(
            endpoint=endpoint,
            task=form["task"],
            examples=_examples(form["examples"]),
            name=form["name"],
        )
    except CodeToolError as exc:
        context["error"] = str(exc)
        return render(request, "agents/tool_maker.html", context, status=400)
    if made.tool is None:
        context["error"] = f"the model wrote no usable tool in {made.attempts} tries: {made.error}"
        return render(request, "agents/tool_maker.html", context, status=400)
    if made.error:
        messages.warning(request, f"Saved as a draft, but {made.error}.")
    else:
        messages.success(request, "Saved as a draft: every example passed in the sandbox.")
    return redirect("toolsapp:code_tool", name=made.tool.name)
