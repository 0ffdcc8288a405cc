"""Building in the app: create, edit, duplicate and delete agents and model endpoints,
test an endpoint, browse an agent's versions and run a finished trace again.

Every form posts, then redirects (Post/Redirect/Get); errors re-render the form with
the messages next to the fields. Builders and admins edit (the models' own add/change/
delete permissions, granted by the ``builder`` role); everyone signed in reads.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from tooltrail.crud import delete_confirmed
from traces.models import Trace
from traces.selectors import trace_get_for_user

from .forms import AgentForm, EndpointForm, RunAgainForm
from .models import Agent, AgentVersion, ModelEndpoint
from .services import (
    DeleteRefused,
    RunError,
    agent_delete,
    agent_duplicate,
    agent_run_again,
    agent_save,
    endpoint_delete,
    endpoint_duplicate,
    endpoint_test,
)


def _can(request: HttpRequest, model: str) -> dict[str, bool]:
    user = request.user
    return {
        "can_add": user.has_perm(f"agents.add_{model}"),
        "can_change": user.has_perm(f"agents.change_{model}"),
        "can_delete": user.has_perm(f"agents.delete_{model}"),
    }


# --- endpoints ------------------------------------------------------------------------


def endpoint_list_view(request: HttpRequest) -> HttpResponse:
    endpoints = ModelEndpoint.objects.prefetch_related("agents")
    return render(
        request,
        "agents/endpoint_list.html",
        {"endpoints": endpoints, **_can(request, "modelendpoint")},
    )


def endpoint_detail_view(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = get_object_or_404(ModelEndpoint, pk=pk)
    return render(
        request,
        "agents/endpoint_detail.html",
        {
            "endpoint": endpoint,
            "agents": endpoint.agents.all(),
            "can_test": request.user.has_perm("agents.run_agent"),
            **_can(request, "modelendpoint"),
        },
    )


def _endpoint_form(request: HttpRequest, endpoint: ModelEndpoint | None) -> HttpResponse:
    form = EndpointForm(request.POST or None, instance=endpoint)
    if request.method == "POST" and form.is_valid():
        saved = form.save()
        messages.success(request, f"Endpoint {saved.name} saved.")
        return redirect(saved.get_absolute_url())
    return render(
        request,
        "agents/endpoint_form.html",
        {"form": form, "endpoint": endpoint},
        status=400 if form.errors else 200,
    )


@permission_required("agents.add_modelendpoint", raise_exception=True)
def endpoint_create_view(request: HttpRequest) -> HttpResponse:
    return _endpoint_form(request, None)


@permission_required("agents.change_modelendpoint", raise_exception=True)
def endpoint_edit_view(request: HttpRequest, pk: int) -> HttpResponse:
    return _endpoint_form(request, get_object_or_404(ModelEndpoint, pk=pk))


@require_POST
@permission_required("agents.add_modelendpoint", raise_exception=True)
def endpoint_duplicate_view(request: HttpRequest, pk: int) -> HttpResponse:
    copy = endpoint_duplicate(endpoint=get_object_or_404(ModelEndpoint, pk=pk))
    messages.success(request, f"Copied as {copy.name}: edit it below.")
    return redirect("agents:endpoint_edit", copy.pk)


@permission_required("agents.delete_modelendpoint", raise_exception=True)
def endpoint_delete_view(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = get_object_or_404(ModelEndpoint, pk=pk)
    return delete_confirmed(
        request,
        obj=endpoint,
        delete=lambda: endpoint_delete(endpoint=endpoint),
        refused=DeleteRefused,
        label="Endpoint",
        done="agents:endpoint_list",
    )


@require_POST
def endpoint_test_view(request: HttpRequest, pk: int) -> HttpResponse:
    """One short model call; the outcome is shown on the endpoint page after the redirect."""
    endpoint = get_object_or_404(ModelEndpoint, pk=pk)
    if not request.user.has_perm("agents.run_agent"):
        raise PermissionDenied("your role cannot call models")
    result = endpoint_test(endpoint=endpoint)
    if result.ok:
        messages.success(
            request,
            f"Connection OK in {result.latency_ms:.0f} ms. The model said: {result.reply!r}",
        )
    else:
        messages.error(
            request, f"Connection failed after {result.latency_ms:.0f} ms: {result.error}"
        )
    return redirect(endpoint.get_absolute_url())


# --- agents ---------------------------------------------------------------------------


def _agent_form(request: HttpRequest, agent: Agent | None) -> HttpResponse:
    form = AgentForm(request.POST or None, instance=agent)
    if request.method == "POST" and form.is_valid():
        saved = agent_save(agent=form.save(commit=False))
        messages.success(request, f"Agent {saved.name} saved.")
        return redirect(saved.get_absolute_url())
    return render(
        request,
        "agents/agent_form.html",
        {"form": form, "agent": agent},
        status=400 if form.errors else 200,
    )


@permission_required("agents.add_agent", raise_exception=True)
def agent_create_view(request: HttpRequest) -> HttpResponse:
    return _agent_form(request, None)


@permission_required("agents.change_agent", raise_exception=True)
def agent_edit_view(request: HttpRequest, slug: str) -> HttpResponse:
    return _agent_form(request, get_object_or_404(Agent, slug=slug))


@require_POST
@permission_required("agents.add_agent", raise_exception=True)
def agent_duplicate_view(request: HttpRequest, slug: str) -> HttpResponse:
    copy = agent_duplicate(agent=get_object_or_404(Agent, slug=slug))
    messages.success(request, f"Copied as {copy.slug}: edit it below.")
    return redirect("agents:agent_edit", copy.slug)


@permission_required("agents.delete_agent", raise_exception=True)
def agent_delete_view(request: HttpRequest, slug: str) -> HttpResponse:
    agent = get_object_or_404(Agent, slug=slug)
    return delete_confirmed(
        request,
        obj=agent,
        delete=lambda: agent_delete(agent=agent),
        refused=DeleteRefused,
        label="Agent",
        done="agents:agent_list",
    )


def agent_version_view(request: HttpRequest, slug: str, number: int) -> HttpResponse:
    version = get_object_or_404(
        AgentVersion.objects.select_related("agent"), agent__slug=slug, number=number
    )
    runs = Trace.objects.filter(metadata__agent_version_id=version.id).order_by("-created_at")[:20]
    return render(request, "agents/agent_version.html", {"version": version, "runs": runs})


# --- run again ------------------------------------------------------------------------


def run_again_view(request: HttpRequest, trace_id) -> HttpResponse:
    """GET: the input to run again (editable); POST: start the run and open its trace."""
    try:
        trace = trace_get_for_user(user=request.user, trace_id=trace_id)
    except Trace.DoesNotExist:
        raise Http404("no such trace") from None
    if not request.user.has_perm("agents.run_agent"):
        raise PermissionDenied("your role (viewer) cannot start runs")
    form = RunAgainForm(request.POST or None, initial={"input": trace.input})
    if request.method == "POST" and form.is_valid():
        try:
            new = agent_run_again(trace=trace, input=form.cleaned_data["input"], user=request.user)
        except RunError as exc:
            messages.error(request, str(exc))
            return redirect(trace.get_absolute_url())
        return redirect(new.get_absolute_url())
    return render(
        request,
        "agents/run_again.html",
        {"form": form, "trace": trace},
        status=400 if form.errors else 200,
    )
