from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from toolsapp.selectors import toolset_tools
from traces.selectors import trace_list
from traces.stats import trace_outcomes

from .models import Agent
from .services import RunError, agent_run_start


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
