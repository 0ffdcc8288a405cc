from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST

from tooltrail.api import ApiError, api_view
from tooltrail.params import int_param

from .models import Step, Trace
from .rendering import tree_html
from .selectors import (
    model_call_conversation,
    step_blob_get,
    step_get,
    steps_for_tree,
    tool_call_stats,
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
    data = step.input if isinstance(step.input, dict) else {}
    messages = data.get("messages")
    shown = len(messages) if isinstance(messages, list) else 0
    return {
        "selected": step,
        "conversation": conversation if conversation and len(conversation) > shown else None,
    }


def trace_detail_view(request: HttpRequest, trace_id) -> HttpResponse:
    trace = _get_trace_for_user(request, trace_id)
    steps = steps_for_tree(trace_id=trace.id)
    selected = None
    seq = int_param(request.GET.get("step"), default=0, lo=1)
    if seq:
        selected = step_get(trace_id=trace.id, seq=seq)
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
            "can_cancel": request.user.has_perm("traces.cancel_trace"),
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
    if not request.user.has_perm("traces.cancel_trace"):
        messages.error(request, "Your role (viewer) cannot cancel runs.")
        return redirect(trace.get_absolute_url())
    try:
        trace_cancel(trace_id=trace.id)
        messages.success(request, "Cancel requested: the run stops before its next step.")
    except TraceError as exc:
        messages.error(request, str(exc))
    return redirect(trace.get_absolute_url())


# --- JSON API (the rest is in traces/api.py) -------------------------------------------------------------------------


@api_view(("GET",))
def api_step_full(request: HttpRequest, trace_id, seq: int, field: str) -> HttpResponse:
    """``GET /api/traces/<id>/steps/<seq>/full/<input|output|error>``: the whole value of
    a step field whose row keeps only a capped preview (JSON text; the error as text)."""
    trace = _get_trace_for_user(request, trace_id)
    step = step_get(trace_id=trace.id, seq=seq)
    if step is None:
        raise Http404("no such step")
    if field not in ("input", "output", "error"):
        raise ApiError("field must be input, output or error", status=404)
    blob = step_blob_get(step=step, field=field)
    if blob is None:
        raise ApiError(f"the step's {field} was not truncated: the step itself holds it", 404)
    json_text = field != "error" and blob.complete
    response = HttpResponse(
        blob.text, content_type="application/json" if json_text else "text/plain; charset=utf-8"
    )
    response["X-Tooltrail-Size"] = str(blob.size)
    response["X-Tooltrail-Complete"] = "true" if blob.complete else "false"
    return response


def tool_calls_view(request: HttpRequest) -> HttpResponse:
    """The recent calls of one tool (``?name=&source=&tool=``), with success rate and
    latency. The tool page loads the panel fragment; without JavaScript it links here.
    It lives in traces because it reads steps: the tools app imports no other app."""
    name = request.GET.get("name", "")
    source = request.GET.get("source", "")
    tool_id = request.GET.get("tool", "")
    stats = tool_call_stats(
        name=name, source=source, tool_id=int(tool_id) if tool_id.isdigit() else None
    )
    template = "traces/tool_calls.html"
    if request.htmx:
        template += "#panel"
    return render(request, template, {"name": name, "source": source, "stats": stats})
