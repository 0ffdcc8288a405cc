"""Annotation pages (queues, the annotator's page, adjudication, exports) and the
annotation JSON API. Views parse input, call a service, render."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.text import capfirst
from django.views.decorators.http import require_POST

from tooltrail.api import ApiError, api_view, json_body

from .annotation_models import (
    Annotation,
    AnnotationQueue,
    ErrorCategory,
    Export,
    QueueAssignment,
    QueueItem,
    Verdict,
)
from .annotation_selectors import (
    can_annotate,
    labels_for,
    queue_agreement,
    queue_counts,
    queue_get_for_user,
    queue_payload,
    queue_progress,
    queue_progress_for_user,
    queues_for_user,
)
from .annotation_services import (
    ClaimExpired,
    LabelConflict,
    LabelError,
    QueueError,
    annotation_payload,
    annotation_save,
    queue_create,
    queue_item_label,
    queue_next,
    queue_previous,
    queue_skip,
    queue_suggestions_request,
)
from .export_services import export_archive, export_start
from .exporters import FORMATS
from .exporters.files import ExportError
from .models import Step, Trace
from .selectors import model_call_conversation, trace_get_for_user
from .serializers import step_payload

CATEGORY_KEYS = "qwertyuiop"


def _get_queue_for_user(request: HttpRequest, queue_id: int) -> AnnotationQueue:
    try:
        return queue_get_for_user(user=request.user, queue_id=queue_id)
    except AnnotationQueue.DoesNotExist:
        raise Http404("no such queue") from None


def _require(request: HttpRequest, perm: str, what: str) -> None:
    if not request.user.has_perm(perm):
        raise PermissionDenied(f"Your role cannot {what}.")


def _categories() -> list[tuple[str, ErrorCategory]]:
    return list(zip(CATEGORY_KEYS, ErrorCategory.objects.filter(active=True), strict=False))


# --- queue list, creation, queue page ------------------------------------------------


def queue_list_view(request: HttpRequest) -> HttpResponse:
    queues = list(queues_for_user(user=request.user))
    counts = queue_counts(queue_ids=[q.id for q in queues])
    rows = []
    for queue in queues:
        c = counts[queue.id]
        total = c["items_total"]
        rows.append(
            {"queue": queue, **c, "percent": round(100 * c["items_done"] / total) if total else 0}
        )
    return render(
        request,
        "traces/queue_list.html",
        {
            "rows": rows,
            "can_create": request.user.has_perm("traces.adjudicate"),
            "can_annotate": can_annotate(request.user),
        },
    )


def _queue_form_context(data: dict[str, Any] | None = None) -> dict[str, Any]:
    users = get_user_model().objects.filter(groups__name__in=["annotator", "admin"]).distinct()
    return {
        "form": data or {},
        "annotator_choices": users.order_by("username"),
        "statuses": Trace.Status.choices,
        "step_kinds": AnnotationQueue.StepKinds.choices,
        "assignments": AnnotationQueue.Assignment.choices,
    }


def queue_create_view(request: HttpRequest) -> HttpResponse:
    _require(request, "traces.adjudicate", "create annotation queues")
    if request.method != "POST":
        return render(request, "traces/queue_form.html", _queue_form_context())
    post = request.POST
    filter = {
        key: post.get(key, "").strip()
        for key in ("agent", "tool", "status", "error", "since", "until", "sample", "seed")
    }
    try:
        overlap = int(post.get("overlap") or 1)
    except ValueError:
        overlap = 0
    annotators = get_user_model().objects.filter(pk__in=post.getlist("annotators"))
    try:
        queue = queue_create(
            name=post.get("name", ""),
            filter=filter,
            step_kinds=post.get("step_kinds", "all"),
            overlap=overlap,
            assignment=post.get("assignment", "pull_next"),
            annotators=list(annotators),
            instructions=post.get("instructions", ""),
            judge_endpoint=post.get("judge_endpoint", "").strip(),
            judge_rubric=post.get("judge_rubric", ""),
            created_by=request.user,
        )
    except QueueError as exc:
        context = _queue_form_context(dict(post.items()))
        context["error"] = str(exc)
        return render(request, "traces/queue_form.html", context, status=400)
    messages.success(request, f"Queue created with {queue.items.count()} items.")
    return redirect(queue.get_absolute_url())


def queue_detail_view(request: HttpRequest, queue_id: int) -> HttpResponse:
    queue = _get_queue_for_user(request, queue_id)
    return render(
        request,
        "traces/queue_detail.html",
        {
            "queue": queue,
            "progress": queue_progress(queue=queue),
            "agreement": queue_agreement(queue=queue),
            "can_annotate": can_annotate(request.user),
            "can_adjudicate": request.user.has_perm("traces.adjudicate"),
            "can_export": request.user.has_perm("traces.export"),
            "formats": FORMATS,
            "exports": queue.exports.all()[:10],
        },
    )


@require_POST
def queue_suggest_view(request: HttpRequest, queue_id: int) -> HttpResponse:
    queue = _get_queue_for_user(request, queue_id)
    _require(request, "traces.adjudicate", "ask the judge for suggestions")
    try:
        queue_suggestions_request(queue=queue)
        messages.success(request, f"Asked {queue.judge_endpoint} for suggestions on every item.")
    except QueueError as exc:
        messages.error(request, str(exc))
    return redirect(queue.get_absolute_url())


# --- the annotator's page --------------------------------------------------------------


def _item_context(
    request: HttpRequest, queue: AnnotationQueue, assignment: QueueAssignment | None, **extra
) -> dict:
    """What the annotator sees beside one item: the step, the trace so far, the tool's
    schema, their own label (to edit), the judge's suggestion and their progress.

    This renders on every key press, so it reads little: one query for all the
    progress figures, the item as ``queue_next`` loaded it (with step, trace and
    suggestion), one for the earlier steps and one for the user's labels on the step
    and on the trace."""
    user = request.user
    context: dict[str, Any] = {"queue": queue, "assignment": assignment, **extra}
    progress = queue_progress_for_user(queue=queue, user=user)
    context["mine_done"] = progress["mine_done"]
    context["counts"] = progress
    context["categories"] = _categories()
    if assignment is None:
        return context
    item = assignment.item
    step = item.step
    earlier = list(
        Step.objects.filter(trace_id=item.trace_id, seq__lt=step.seq)
        .defer("input", "metadata")
        .order_by("seq")
    )
    own_labels = {
        a.step_id: a
        for a in Annotation.objects.filter(
            Q(step=step) | Q(step=None),
            trace_id=item.trace_id,
            author=user,
            role=Annotation.Role.HUMAN,
        ).select_related("category")
    }
    label = own_labels.get(step.id)
    suggestion = getattr(item, "suggestion", None)
    context.update(
        {
            "item": item,
            "step": step,
            "trace": item.trace,
            "earlier": earlier,
            "conversation": model_call_conversation(step=step)
            if step.kind == Step.Kind.MODEL_CALL
            else None,
            "schema": step.metadata.get("schema"),
            "label": label,
            "suggestion": suggestion,
            "suggestion_json": json.dumps(
                {
                    "verdict": suggestion.verdict,
                    "category": suggestion.category.slug if suggestion.category_id else "",
                    "corrected_call": suggestion.corrected_call,
                }
            )
            if suggestion
            else "",
            "current": _current_values(label, extra.get("posted")),
            "trace_label": own_labels.get(None),
            "verdicts": Verdict.choices,
        }
    )
    return context


def _trace_label(trace_id, user) -> Annotation | None:
    return Annotation.objects.filter(
        trace_id=trace_id, step=None, author=user, role=Annotation.Role.HUMAN
    ).first()


def _current_values(label: Annotation | None, posted) -> dict[str, str]:
    """What the form shows: what was just posted (after an error), else the label."""
    if posted is not None:
        return {
            k: posted.get(k, "")
            for k in ("verdict", "category", "note", "corrected_name", "corrected_arguments")
        }
    if label is None:
        return {}
    call = label.corrected_call or {}
    return {
        "verdict": label.verdict,
        "category": label.category.slug if label.category_id else "",
        "note": label.note,
        "corrected_name": call.get("name", ""),
        "corrected_arguments": json.dumps(call["arguments"]) if call else "",
    }


def _annotate_response(
    request: HttpRequest, queue: AnnotationQueue, assignment, status: int = 200, **extra
) -> HttpResponse:
    template = "traces/annotate.html"
    if request.htmx:
        template += "#item"
    return render(
        request, template, _item_context(request, queue, assignment, **extra), status=status
    )


def annotate_view(request: HttpRequest, queue_id: int) -> HttpResponse:
    queue = _get_queue_for_user(request, queue_id)
    _require(request, "traces.annotate", "label steps")
    if "back" in request.GET:
        value = request.GET["back"]
        before = int(value) if value.isdigit() else None
        assignment = queue_previous(queue=queue, user=request.user, before=before)
        if assignment is None:
            return _annotate_response(
                request,
                queue,
                queue_next(queue=queue, user=request.user),
                error="There is no earlier item of yours.",
            )
        return _annotate_response(request, queue, assignment)
    return _annotate_response(request, queue, queue_next(queue=queue, user=request.user))


@require_POST
def annotate_label_view(request: HttpRequest, queue_id: int, item_id: int) -> HttpResponse:
    queue = _get_queue_for_user(request, queue_id)
    _require(request, "traces.annotate", "label steps")
    assignment = (
        QueueAssignment.objects.filter(queue=queue, user=request.user, item_id=item_id)
        .select_related("item__step__trace")
        .first()
    )
    if assignment is None:
        raise Http404("you hold no such item in this queue")
    post = request.POST
    call = None
    if post.get("corrected_name", "").strip():
        call = {
            "name": post["corrected_name"],
            "arguments": post.get("corrected_arguments") or "{}",
        }
    version = post.get("version") or None
    try:
        # The label and the next claim share one transaction: one commit per key press.
        _label, following = queue_item_label(
            queue=queue,
            assignment=assignment,
            user=request.user,
            verdict=post.get("verdict", ""),
            category=post.get("category") or None,
            note=post.get("note", ""),
            corrected_call=call,
            version=int(version) if version and version.isdigit() else None,
            claim_next=bool(request.htmx),
        )
    except ClaimExpired as exc:
        # Someone else has the item now: say so, and go on to the next one.
        if not request.htmx:
            messages.error(request, capfirst(str(exc)))
            return redirect(reverse("traces:annotate", args=[queue.id]))
        return _annotate_response(
            request, queue, queue_next(queue=queue, user=request.user), error=capfirst(str(exc))
        )
    except (LabelError, LabelConflict) as exc:
        status = 409 if isinstance(exc, LabelConflict) else 400
        # htmx swaps only 2xx answers: the item comes back with the message on it.
        return _annotate_response(
            request,
            queue,
            assignment,
            status=200 if request.htmx else status,
            error=str(exc),
            posted=post,
        )
    if not request.htmx:
        return redirect(reverse("traces:annotate", args=[queue.id]))
    return _annotate_response(request, queue, following)


@require_POST
def annotate_trace_view(request: HttpRequest, queue_id: int, item_id: int) -> HttpResponse:
    """The annotator's verdict and score for the whole trace of the item they are on."""
    queue = _get_queue_for_user(request, queue_id)
    _require(request, "traces.annotate", "label traces")
    item = QueueItem.objects.filter(queue=queue, pk=item_id).first()
    if item is None:
        raise Http404("no such item in this queue")
    post = request.POST
    version = post.get("version") or ""
    error, saved = "", False
    try:
        score = float(post["score"]) if post.get("score") else None
    except ValueError:
        score, error = None, "score must be a number from 0 to 1"
    if not error:
        try:
            annotation_save(
                user=request.user,
                trace_id=item.trace_id,
                step_seq=None,
                verdict=post.get("verdict", ""),
                score=score,
                queue_id=queue.id,
                version=int(version) if version.isdigit() else None,
            )
            saved = True
        except (LabelError, LabelConflict) as exc:
            error = str(exc)
    if not request.htmx:
        if error:
            messages.error(request, error)
        return redirect(reverse("traces:annotate", args=[queue.id]))
    return render(
        request,
        "traces/annotate.html#trace_label",
        {
            "queue": queue,
            "item": item,
            "verdicts": Verdict.choices,
            "trace_label": _trace_label(item.trace_id, request.user),
            "trace_label_saved": saved,
            "trace_label_error": error,
        },
    )


@require_POST
def annotate_skip_view(request: HttpRequest, queue_id: int, item_id: int) -> HttpResponse:
    queue = _get_queue_for_user(request, queue_id)
    _require(request, "traces.annotate", "label steps")
    try:
        queue_skip(queue=queue, user=request.user, item_id=item_id)
    except QueueError as exc:
        messages.error(request, str(exc))
    if not request.htmx:
        return redirect(reverse("traces:annotate", args=[queue.id]))
    return _annotate_response(request, queue, queue_next(queue=queue, user=request.user))


# --- adjudication ----------------------------------------------------------------------


def adjudicate_view(request: HttpRequest, queue_id: int, trace_id, seq: int) -> HttpResponse:
    queue = _get_queue_for_user(request, queue_id)
    _require(request, "traces.adjudicate", "adjudicate labels")
    step = Step.objects.filter(trace_id=trace_id, seq=seq).select_related("trace").first()
    if step is None or not QueueItem.objects.filter(queue=queue, step=step).exists():
        raise Http404("no such item in this queue")
    gold = Annotation.objects.filter(step=step, role=Annotation.Role.GOLD).first()
    error = ""
    if request.method == "POST":
        post = request.POST
        call = None
        if post.get("corrected_name", "").strip():
            call = {
                "name": post["corrected_name"],
                "arguments": post.get("corrected_arguments") or "{}",
            }
        version = post.get("version") or None
        try:
            annotation_save(
                user=request.user,
                trace_id=step.trace_id,
                step_seq=step.seq,
                verdict=post.get("verdict", ""),
                category=post.get("category") or None,
                note=post.get("note", ""),
                corrected_call=call,
                queue_id=queue.id,
                version=int(version) if version and version.isdigit() else None,
                role=Annotation.Role.GOLD,
            )
            messages.success(request, f"Gold label saved for step #{step.seq}.")
            return redirect(queue.get_absolute_url())
        except (LabelError, LabelConflict) as exc:
            error = str(exc)
    return render(
        request,
        "traces/adjudicate.html",
        {
            "queue": queue,
            "step": step,
            "labels": labels_for(trace_id=step.trace_id, step_id=step.id),
            "gold": gold,
            "categories": _categories(),
            "error": error,
        },
        status=400 if error else 200,
    )


# --- exports ---------------------------------------------------------------------------


@require_POST
def export_create_view(request: HttpRequest) -> HttpResponse:
    _require(request, "traces.export", "export datasets")
    post = request.POST
    queue_id = int(post["queue"]) if post.get("queue", "").isdigit() else None
    try:
        split = float(post["split"]) if post.get("split") else None
        seed = int(post.get("seed") or 0)
    except ValueError:
        messages.error(request, "split must be a number like 0.9 and seed a whole number")
        return redirect(request.META.get("HTTP_REFERER") or reverse("traces:queue_list"))
    try:
        export = export_start(
            user=request.user,
            format=post.get("format", ""),
            queue_id=queue_id,
            split=split,
            seed=seed,
        )
    except ExportError as exc:
        messages.error(request, str(exc))
        return redirect(request.META.get("HTTP_REFERER") or reverse("traces:queue_list"))
    return redirect(reverse("traces:export_detail", args=[export.id]))


def _get_export(request: HttpRequest, export_id) -> Export:
    _require(request, "traces.export", "export datasets")
    try:
        return Export.objects.get(pk=export_id)
    except Export.DoesNotExist:
        raise Http404("no such export") from None


def export_detail_view(request: HttpRequest, export_id) -> HttpResponse:
    export = _get_export(request, export_id)
    template = "traces/export_detail.html"
    if request.htmx:
        template += "#status"
    return render(request, template, {"export": export, "percent": round(export.progress * 100)})


def export_download_view(request: HttpRequest, export_id) -> HttpResponse:
    export = _get_export(request, export_id)
    path = export_archive(export)
    if export.status != Export.Status.DONE or not path.exists():
        raise Http404("this export has no file (yet)")
    return FileResponse(path.open("rb"), as_attachment=True, filename=path.name)


# --- JSON API --------------------------------------------------------------------------


@api_view(("GET",))
def api_queues(request: HttpRequest) -> JsonResponse:
    """``GET /api/queues``: the queues the caller may see, with progress."""
    queues = list(queues_for_user(user=request.user))
    counts = queue_counts(queue_ids=[q.id for q in queues])
    return JsonResponse({"queues": [queue_payload(q, counts[q.id]) for q in queues]})


def _item_payload(assignment: QueueAssignment) -> dict[str, Any]:
    item = assignment.item  # queue_next loads it with its step
    suggestion = getattr(item, "suggestion", None)
    return {
        "id": item.id,
        "queue_id": item.queue_id,
        "position": item.position,
        "trace_id": str(item.trace_id),
        "step_seq": item.step.seq,
        "step": step_payload(item.step),
        "schema": item.step.metadata.get("schema"),
        "suggestion": {
            "verdict": suggestion.verdict,
            "category": suggestion.category.slug if suggestion.category_id else None,
            "corrected_call": suggestion.corrected_call,
            "endpoint": suggestion.endpoint,
        }
        if suggestion
        else None,
    }


@api_view(("GET",), permission="traces.annotate")
def api_queue_next(request: HttpRequest, queue_id: int) -> JsonResponse:
    """``GET /api/queues/<id>/next``: the caller's next item (claimed), or null."""
    queue = _get_queue_for_user(request, queue_id)
    assignment = queue_next(queue=queue, user=request.user)
    return JsonResponse({"item": _item_payload(assignment) if assignment else None})


@api_view(("GET",))
def api_queue_agreement(request: HttpRequest, queue_id: int) -> JsonResponse:
    queue = _get_queue_for_user(request, queue_id)
    return JsonResponse(queue_agreement(queue=queue))


@api_view(("POST",), permission="traces.annotate")
def api_annotations(request: HttpRequest) -> JsonResponse:
    """``POST /api/annotations``: label a step (or, without step_seq, a trace)."""
    body = json_body(request)
    for key in ("trace_id", "verdict"):
        if key not in body:
            raise ApiError(f"{key} is required")
    step_seq = body.get("step_seq")
    if step_seq is not None and (not isinstance(step_seq, int) or isinstance(step_seq, bool)):
        raise ApiError("step_seq must be an integer")
    gold = bool(body.get("gold"))
    if gold and not request.user.has_perm("traces.adjudicate"):
        raise ApiError("your role cannot adjudicate (gold labels)", status=403)
    try:
        trace_get_for_user(user=request.user, trace_id=body["trace_id"])
    except (Trace.DoesNotExist, ValueError, TypeError):
        raise ApiError(f"unknown trace {body['trace_id']}") from None
    for key in ("queue_id", "version"):
        if body.get(key) is not None and not isinstance(body[key], int):
            raise ApiError(f"{key} must be an integer")
    try:
        annotation = annotation_save(
            user=request.user,
            trace_id=body["trace_id"],
            step_seq=step_seq,
            verdict=body["verdict"],
            category=body.get("category"),
            note=str(body.get("note") or ""),
            corrected_call=body.get("corrected_call"),
            score=body.get("score"),
            queue_id=body.get("queue_id"),
            version=body.get("version"),
            role=Annotation.Role.GOLD if gold else Annotation.Role.HUMAN,
        )
    except LabelError as exc:
        raise ApiError(str(exc)) from exc
    except LabelConflict as exc:
        raise ApiError(str(exc), status=409) from exc
    return JsonResponse({"annotation": annotation_payload(annotation)}, status=201)


@api_view(("GET",))
def api_trace_annotations(request: HttpRequest, trace_id) -> JsonResponse:
    """``GET /api/traces/<id>/annotations``: every label of the trace, by step."""
    try:
        trace = trace_get_for_user(user=request.user, trace_id=trace_id)
    except Trace.DoesNotExist:
        raise Http404("no such trace") from None
    labels = (
        Annotation.objects.filter(trace=trace)
        .select_related("author", "category", "step")
        .order_by("step__seq", "role", "author__username")
    )
    return JsonResponse({"annotations": [annotation_payload(a) for a in labels]})
