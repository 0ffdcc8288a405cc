from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST

from .models import Step, Trace
from .rendering import tree_html
from .selectors import (
    model_call_conversation,
    step_get,
    steps_for_tree,
    trace_get_for_user,
    trace_list,
)
from .services import TraceError, trace_cancel


def _get_trace_for_user(request: HttpRequest, trace_id) -> Trace:
    try:
        return trace_get_for_user(user=request.user, trace_id=trace_id)
    except Trace.DoesNotExist:
        raise Http404("no such trace") from None


def trace_list_view(request: HttpRequest) -> HttpResponse:
    status = request.GET.get("status") or ""
    agent = request.GET.get("agent") or ""
    qs = trace_list(status=status or None, agent_slug=agent or None)
    page = Paginator(qs, 50).get_page(request.GET.get("page"))
    filters = urlencode({k: v for k, v in (("status", status), ("agent", agent)) if v})
    template = "traces/trace_list.html"
    if request.htmx:
        template += "#rows"
    return render(
        request,
        template,
        {
            "page": page,
            "traces": page.object_list,
            "status": status,
            "agent": agent,
            "statuses": Trace.Status.choices,
            "filters": filters,
            # The list socket needs the filters and page to know which new runs belong here.
            "ws_query": urlencode({"status": status, "agent": agent, "page": page.number}),
        },
    )


def _step_detail_context(step: Step | None) -> dict:
    """What the step panel shows beyond the step itself: for a model call, the whole
    conversation it was sent (the step stores only what was new)."""
    if step is None or step.kind != Step.Kind.MODEL_CALL:
        return {"selected": step}
    conversation = model_call_conversation(step=step)
    shown = len((step.input or {}).get("messages") or [])
    return {
        "selected": step,
        "conversation": conversation if conversation and len(conversation) > shown else None,
    }


def trace_detail_view(request: HttpRequest, trace_id) -> HttpResponse:
    trace = _get_trace_for_user(request, trace_id)
    steps = steps_for_tree(trace_id=trace.id)
    selected = None
    if request.GET.get("step", "").isdigit():
        selected = step_get(trace_id=trace.id, seq=int(request.GET["step"]))
    return render(
        request,
        "traces/trace_detail.html",
        {
            "trace": trace,
            # Built from escaped parts in traces.rendering.
            "tree_html": mark_safe(
                tree_html(steps, selected_seq=selected.seq if selected else None)
            ),
            "has_steps": bool(steps),
            "cursor": steps[-1].seq if steps else 0,
            **_step_detail_context(selected),
            "can_run": request.user.has_perm("agents.run_agent"),
        },
    )


def step_detail_view(request: HttpRequest, trace_id, seq: int) -> HttpResponse:
    trace = _get_trace_for_user(request, trace_id)
    step = step_get(trace_id=trace.id, seq=seq)
    if step is None:
        raise Http404("no such step")
    if request.htmx:
        return render(
            request, "traces/_step_detail.html", {"trace": trace, **_step_detail_context(step)}
        )
    return redirect(f"{trace.get_absolute_url()}?step={seq}")


@require_POST
def trace_cancel_view(request: HttpRequest, trace_id) -> HttpResponse:
    trace = _get_trace_for_user(request, trace_id)
    if not request.user.has_perm("agents.run_agent"):
        messages.error(request, "Your role (viewer) cannot cancel runs.")
        return redirect(trace.get_absolute_url())
    try:
        trace_cancel(trace_id=trace.id)
        messages.success(request, "Cancel requested: the run stops before its next step.")
    except TraceError as exc:
        messages.error(request, str(exc))
    return redirect(trace.get_absolute_url())
