from __future__ import annotations

import uuid
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.shortcuts import redirect, render
from django.template.defaultfilters import pluralize
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST

from tooltrail.api import ApiError, api_view
from tooltrail.params import int_param

from .diff import tool_calls_diff
from .models import Step, Trace
from .rendering import tree_html
from .selectors import (
    ANNOTATION_STATES,
    FilterError,
    TraceFilters,
    TracePage,
    model_call_conversation,
    saved_filters_for_user,
    step_blob_get,
    step_depths_before,
    step_get,
    steps_for_tree,
    steps_matching,
    tool_call_stats,
    trace_filter_choices,
    trace_filters_parse,
    trace_get_for_user,
    trace_page,
    trace_tool_calls,
)
from .services import (
    TraceError,
    saved_filter_delete,
    saved_filter_save,
    trace_cancel,
    traces_delete,
    traces_tag,
)

API_PAGE = 500


def _get_trace_for_user(request: HttpRequest, trace_id) -> Trace:
    try:
        return trace_get_for_user(user=request.user, trace_id=trace_id)
    except Trace.DoesNotExist:
        raise Http404("no such trace") from None


def trace_list_view(request: HttpRequest) -> HttpResponse:
    """The trace list: filters, full-text search, keyset pages, saved filters, bulk
    actions. A bad filter shows its message above an empty list (status 400)."""
    error = ""
    try:
        filters = trace_filters_parse(request.GET)
        page = trace_page(
            filters=filters,
            before=request.GET.get("before", ""),
            after=request.GET.get("after", ""),
        )
    except FilterError as exc:
        error, filters, page = str(exc), TraceFilters(), TracePage(traces=[])
    query = filters.as_query()
    template = "traces/trace_list.html"
    if request.htmx:
        template += "#rows"
    first_page = not request.GET.get("before") and not request.GET.get("after")
    return render(
        request,
        template,
        {
            "page": page,
            "traces": page.traces,
            "filters": filters,
            "query": urlencode(query),
            "error": error,
            "statuses": Trace.Status.choices,
            "annotation_states": list(ANNOTATION_STATES.items()),
            "choices": trace_filter_choices(),
            "saved_filters": saved_filters_for_user(user=request.user),
            "can_change": request.user.has_perm("traces.change_trace"),
            "can_delete": request.user.has_perm("traces.delete_trace"),
            # The list socket needs the filters and page to know which new runs belong here.
            "ws_query": urlencode(
                {
                    "status": filters.status,
                    "agent": filters.agent,
                    # Only status and agent can be checked on a new run as it arrives.
                    "page": "1" if first_page and set(query) <= {"status", "agent"} else "2",
                }
            ),
        },
        status=400 if error else 200,
    )


def _list_url(query: str) -> str:
    url = reverse("traces:trace_list")
    return f"{url}?{query}" if query else url


@require_POST
def saved_filter_view(request: HttpRequest) -> HttpResponse:
    """Save the list's current filters under a name, or delete a saved one."""
    query = request.POST.get("query", "")
    if request.POST.get("delete"):
        try:
            saved_filter_delete(user=request.user, filter_id=int(request.POST["delete"]))
        except ValueError:
            messages.error(request, "no such saved filter")
        return redirect(_list_url(query))
    try:
        trace_filters_parse(QueryDict(query))
        saved_filter_save(user=request.user, name=request.POST.get("name", ""), query=query)
        messages.success(request, "Filter saved.")
    except (FilterError, TraceError) as exc:
        messages.error(request, str(exc))
    return redirect(_list_url(query))


@require_POST
def trace_bulk_view(request: HttpRequest) -> HttpResponse:
    """Tag, untag or delete the checked traces. Deleting asks for confirmation first."""
    action = request.POST.get("action", "")
    query = request.POST.get("query", "")
    ids = []
    for raw in request.POST.getlist("ids")[:500]:
        try:
            ids.append(uuid.UUID(raw))
        except ValueError:
            continue
    if not ids:
        messages.error(request, "Select one or more traces first.")
        return redirect(_list_url(query))
    try:
        if action in ("tag", "untag"):
            if not request.user.has_perm("traces.change_trace"):
                raise PermissionDenied("your role cannot tag traces")
            tag = request.POST.get("tag", "")
            count = traces_tag(trace_ids=ids, tag=tag, remove=action == "untag")
            messages.success(
                request,
                f"Tag “{tag.strip()}” {'removed from' if action == 'untag' else 'added to'} "
                f"{count} trace{pluralize(count)}.",
            )
        elif action == "delete":
            if not request.user.has_perm("traces.delete_trace"):
                raise PermissionDenied("your role cannot delete traces")
            if request.POST.get("confirm") != "yes":
                traces = Trace.objects.filter(pk__in=ids).order_by("-created_at")
                return render(
                    request,
                    "traces/trace_bulk_delete.html",
                    {"traces": traces, "query": query},
                )
            count = traces_delete(trace_ids=ids)
            kept = len(ids) - count
            messages.success(
                request,
                f"Deleted {count} trace{pluralize(count)}."
                + (f" {kept} still running or queued were kept." if kept else ""),
            )
        else:
            messages.error(request, "Choose what to do with the selected traces.")
    except TraceError as exc:
        messages.error(request, str(exc))
    return redirect(_list_url(query))


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


FIRST_SCREEN = 200  # steps in the page itself; the websocket streams the rest


def _seq_param(request: HttpRequest, name: str) -> int | None:
    """A step number from the query (ASCII digits in range), else None."""
    return int_param(request.GET.get(name), default=0, lo=1) or None


def trace_detail_view(request: HttpRequest, trace_id) -> HttpResponse:
    """One trace: the first screen of the step tree (``?after=N`` for the next, without
    JavaScript), the timeline, the step panel (``?step=N``). With JavaScript the
    websocket streams the steps after the first screen, then the live ones."""
    trace = _get_trace_for_user(request, trace_id)
    after = _seq_param(request, "after") or 0
    steps = steps_for_tree(trace_id=trace.id, after=after, limit=FIRST_SCREEN)
    selected = None
    step_seq = _seq_param(request, "step")
    if step_seq is not None:
        selected = step_get(trace_id=trace.id, seq=step_seq)
    last = steps[-1].seq if steps else after
    depths = step_depths_before(trace_id=trace.id, steps=steps) if after else {}
    return render(
        request,
        "traces/trace_detail.html",
        {
            "trace": trace,
            # Built from escaped parts in traces.rendering.
            "tree_html": mark_safe(
                tree_html(steps, selected_seq=selected.seq if selected else None, depths=depths)
            ),
            "has_steps": bool(steps) or after > 0,
            "cursor": last,
            "after": after,
            "more": last < trace.step_count,
            "prev_after": max(0, after - FIRST_SCREEN) if after else None,
            **_step_detail_context(selected),
            "can_cancel": request.user.has_perm("traces.cancel_trace"),
        },
    )


def trace_search_view(request: HttpRequest, trace_id) -> JsonResponse:
    """``?q=``: the seqs of this trace's steps that match (the page's "/" search)."""
    trace = _get_trace_for_user(request, trace_id)
    q = request.GET.get("q", "")[:200]
    return JsonResponse({"q": q, "seqs": steps_matching(trace_id=trace.id, q=q)})


def step_detail_view(request: HttpRequest, trace_id, seq: int) -> HttpResponse:
    trace = _get_trace_for_user(request, trace_id)
    step = step_get(trace_id=trace.id, seq=seq)
    if step is None:
        raise Http404("no such step")
    if request.htmx:
        return render(
            request,
            "traces/_step_detail.html",
            {"trace": trace, **_step_detail_context(step)},
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
        messages.success(
            request,
            "Cancel requested: the badge says “Cancelling…” until the run stops at its next "
            "model or tool call, then “Cancelled”.",
        )
    except TraceError as exc:
        messages.error(request, str(exc))
    return redirect(trace.get_absolute_url())


def trace_diff_view(request: HttpRequest) -> HttpResponse:
    """``?a=<trace id>&b=<trace id>``: the two traces' tool calls side by side."""
    context: dict = {"a_id": request.GET.get("a", ""), "b_id": request.GET.get("b", "")}
    traces = []
    for key in ("a", "b"):
        raw = context[f"{key}_id"].strip()
        if not raw:
            continue
        try:
            traces.append(_get_trace_for_user(request, uuid.UUID(raw)))
        except (ValueError, Http404):
            context["error"] = f"Trace {key.upper()}: no trace with id {raw!r}."
    status = 200
    if len(traces) == 2 and "error" not in context:
        a, b = traces
        rows = tool_calls_diff(trace_tool_calls(trace_id=a.id), trace_tool_calls(trace_id=b.id))
        context.update(
            a=a, b=b, rows=rows, changed=sum(r.kind != "same" for r in rows), total=len(rows)
        )
    elif "error" in context:
        status = 400
    return render(request, "traces/trace_diff.html", context, status=status)


# --- JSON API -------------------------------------------------------------------------


# The traces JSON API (the list, one trace, its steps, cancel) is in traces/api.py.


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
