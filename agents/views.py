from __future__ import annotations

import json

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from toolsapp.selectors import toolset_tools
from traces.selectors import trace_list
from traces.stats import trace_outcomes

from .models import Agent
from .services import RunError, agent_run_fork, agent_run_start


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


@require_POST
def trace_fork_view(request: HttpRequest, trace_id, seq: int) -> HttpResponse:
    """The debugger's "re-run from here": fork ``trace_id`` at tool call ``seq`` with the
    posted ``arguments`` (JSON) and open the new, live trace."""
    from traces.models import Trace
    from traces.selectors import trace_get_for_user

    try:
        trace = trace_get_for_user(user=request.user, trace_id=trace_id)
    except Trace.DoesNotExist:
        raise Http404("no such trace") from None
    back = f"{trace.get_absolute_url()}?step={seq}"
    if not request.user.has_perm("agents.run_agent"):
        messages.error(request, "Your role (viewer) cannot start runs.")
        return redirect(back)
    raw = request.POST.get("arguments", "")
    try:
        arguments = json.loads(raw)
    except ValueError as exc:
        messages.error(request, f"The arguments are not valid JSON: {exc}")
        return redirect(back)
    try:
        new = agent_run_fork(trace=trace, seq=seq, arguments=arguments, user=request.user)
    except RunError as exc:
        messages.error(request, str(exc))
        return redirect(back)
    messages.success(request, f"Re-running from step #{seq} of {trace.name} with your edit.")
    return redirect(new.get_absolute_url())
