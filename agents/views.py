from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from toolsapp.selectors import toolset_tools
from tooltrail.api import ApiError, api_view, json_body
from traces.selectors import trace_list
from traces.services import trace_payload
from traces.stats import trace_outcomes

from .models import Agent
from .services import EnqueueError, RunError, agent_run_start


def agent_list_view(request: HttpRequest) -> HttpResponse:
    agents = Agent.objects.select_related("endpoint", "toolset")
    return render(
        request,
        "agents/agent_list.html",
        {"agents": agents, "can_add": request.user.has_perm("agents.add_agent")},
    )


def agent_detail_view(request: HttpRequest, slug: str) -> HttpResponse:
    agent = get_object_or_404(Agent.objects.select_related("endpoint", "toolset"), slug=slug)
    recent = trace_list(agent_slug=slug)[:10]
    return render(
        request,
        "agents/agent_detail.html",
        {
            "agent": agent,
            "tools": toolset_tools(toolset=agent.toolset),
            "recent": recent,
            "outcomes": trace_outcomes(agent_slug=slug),
            "versions": agent.versions.all()[:10],
            "can_run": request.user.has_perm("agents.run_agent"),
            "can_add": request.user.has_perm("agents.add_agent"),
            "can_change": request.user.has_perm("agents.change_agent"),
            "can_delete": request.user.has_perm("agents.delete_agent"),
        },
    )


@require_POST
def agent_run_view(request: HttpRequest, slug: str) -> HttpResponse:
    agent = get_object_or_404(Agent, slug=slug)
    if not request.user.has_perm("agents.run_agent"):
        messages.error(request, "Your role (viewer) cannot start runs.")
        return redirect(agent.get_absolute_url())
    try:
        trace = agent_run_start(agent=agent, input=request.POST.get("input", ""), user=request.user)
    except RunError as exc:
        messages.error(request, str(exc))
        return redirect(agent.get_absolute_url())
    return redirect(trace.get_absolute_url())


@api_view(("POST",), permission="agents.run_agent")
def api_runs(request: HttpRequest) -> JsonResponse:
    """``POST /api/runs`` with ``{"agent": "<slug>", "input": "..."}`` → 201 and the queued trace."""
    body = json_body(request)
    slug = body.get("agent")
    if not isinstance(slug, str) or not slug:
        raise ApiError('"agent" (the agent\'s slug) is required')
    agent = Agent.objects.filter(slug=slug).first()
    if agent is None:
        raise ApiError(f"no agent with slug {slug!r}", status=404)
    if not isinstance(body.get("input"), str):
        raise ApiError('"input" must be a string')
    try:
        trace = agent_run_start(agent=agent, input=body["input"], user=request.user)
    except EnqueueError as exc:
        raise ApiError(str(exc), status=503) from exc
    except RunError as exc:
        raise ApiError(str(exc)) from exc
    payload = trace_payload(trace)
    payload["url"] = request.build_absolute_uri(trace.get_absolute_url())
    payload["steps_url"] = request.build_absolute_uri(
        reverse("traces:api_trace_steps", args=[trace.id])
    )
    return JsonResponse(payload, status=201)
