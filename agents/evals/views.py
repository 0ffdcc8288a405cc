"""Pages for datasets and experiments. Views parse input, call a service, render."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.text import slugify
from django.views.decorators.http import require_POST

from agents.models import Agent

from .datasets import DatasetFileError
from .experiments import (
    ExperimentError,
    experiment_cancel,
    experiment_create,
    experiment_resume,
    experiment_retry_failed,
    experiment_start,
)
from .models import Dataset, Experiment
from .selectors import experiment_progress, experiment_results, experiments_compare
from .services import EvalError, dataset_create, dataset_from_queue, dataset_items_from_lines

PERMISSION = "agents.run_experiment"
MAX_UPLOAD_BYTES = 50 * 1024 * 1024


def _require(request: HttpRequest) -> None:
    if not request.user.has_perm(PERMISSION):
        raise PermissionDenied("your role cannot import datasets or run experiments")


def _upload_lines(upload, label: str) -> list[str]:
    if upload.size > MAX_UPLOAD_BYTES:
        raise DatasetFileError(f"{label} is over {MAX_UPLOAD_BYTES // 2**20} MB")
    try:
        return upload.read().decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise DatasetFileError(f"{label} is not UTF-8 text (byte {exc.start})") from exc


def dataset_list_view(request: HttpRequest) -> HttpResponse:
    from traces.annotation_models import AnnotationQueue

    context = {
        "datasets": Dataset.objects.all(),
        "queues": AnnotationQueue.objects.order_by("name"),
        "can_edit": request.user.has_perm(PERMISSION),
        "form": {},
    }
    if request.method == "POST":
        _require(request)
        form = request.POST
        context["form"] = form
        name = form.get("name", "").strip()
        questions = request.FILES.get("questions")
        answers = request.FILES.get("answers")
        try:
            if not name or slugify(name) != name:
                raise EvalError(
                    "the name must be a slug: letters, digits, - and _"
                    + (f" (e.g. {slugify(name)!r})" if name else "")
                )
            if questions is None:
                raise EvalError("choose the question file")
            items = dataset_items_from_lines(
                format=form.get("format", ""),
                questions=_upload_lines(questions, questions.name),
                answers=_upload_lines(answers, answers.name) if answers else None,
                questions_name=questions.name,
                answers_name=answers.name if answers else "answers",
            )
            dataset = dataset_create(
                name=name,
                format=form.get("format", ""),
                items=items,
                description=form.get("description", ""),
                user=request.user,
            )
        except (DatasetFileError, EvalError) as exc:
            messages.error(request, str(exc))
            return render(request, "agents/evals/dataset_list.html", context, status=400)
        messages.success(request, f"Imported {dataset.item_count} items into {dataset.name}.")
        return redirect(dataset.get_absolute_url())
    return render(request, "agents/evals/dataset_list.html", context)


@require_POST
def dataset_from_queue_view(request: HttpRequest) -> HttpResponse:
    _require(request)
    name = request.POST.get("name", "").strip()
    try:
        if not name or slugify(name) != name:
            raise EvalError("the name must be a slug: letters, digits, - and _")
        dataset = dataset_from_queue(
            queue_id=int(request.POST.get("queue", "")), name=name, user=request.user
        )
    except (EvalError, ValueError) as exc:
        messages.error(request, str(exc) or "choose a queue")
        return redirect("agents:dataset_list")
    messages.success(
        request, f"{dataset.item_count} corrected calls became items of {dataset.name}."
    )
    return redirect(dataset.get_absolute_url())


def dataset_detail_view(request: HttpRequest, name: str) -> HttpResponse:
    dataset = get_object_or_404(Dataset, name=name)
    items = dataset.items.order_by("index")
    categories = {}
    for category in items.values_list("category", flat=True):
        categories[category or "—"] = categories.get(category or "—", 0) + 1
    return render(
        request,
        "agents/evals/dataset_detail.html",
        {
            "dataset": dataset,
            "items": items[:100],
            "categories": sorted(categories.items()),
            "agents": Agent.objects.order_by("name"),
            "experiments": dataset.experiments.select_related("agent")[:20],
            "can_run": request.user.has_perm(PERMISSION),
        },
    )


def experiment_list_view(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "agents/evals/experiment_list.html",
        {"experiments": Experiment.objects.select_related("agent", "dataset")[:200]},
    )


@require_POST
def experiment_new_view(request: HttpRequest) -> HttpResponse:
    _require(request)
    dataset = get_object_or_404(Dataset, name=request.POST.get("dataset", ""))
    slugs = request.POST.getlist("agent")
    agents = list(Agent.objects.filter(slug__in=slugs))
    if not agents:
        messages.error(request, "Choose at least one agent.")
        return redirect(dataset.get_absolute_url())
    try:
        limit = int(request.POST["limit"]) if request.POST.get("limit") else None
        concurrency = int(request.POST.get("concurrency") or 4)
        created = [
            experiment_create(
                agent=agent,
                dataset=dataset,
                limit=limit,
                concurrency=concurrency,
                user=request.user,
            )
            for agent in agents
        ]
    except ValueError:
        messages.error(request, "Limit and concurrency must be whole numbers.")
        return redirect(dataset.get_absolute_url())
    except ExperimentError as exc:
        messages.error(request, str(exc))
        return redirect(dataset.get_absolute_url())
    for experiment in created:
        experiment_start(experiment=experiment)
    if len(created) > 1:
        ids = "&".join(f"id={e.id}" for e in created)
        return redirect(f"/experiments/compare/?{ids}")
    return redirect(created[0].get_absolute_url())


def experiment_detail_view(request: HttpRequest, pk: int) -> HttpResponse:
    experiment = get_object_or_404(Experiment.objects.select_related("agent", "dataset"), pk=pk)
    failed_only = request.GET.get("failed") == "1"
    context = {
        "experiment": experiment,
        "progress": experiment_progress(experiment=experiment),
        "results": experiment_results(experiment=experiment, failed_only=failed_only)[:500],
        "failed_only": failed_only,
        "can_run": request.user.has_perm(PERMISSION),
        "others": Experiment.objects.filter(dataset=experiment.dataset).exclude(pk=pk)[:20],
    }
    template = "agents/evals/experiment_detail.html"
    if request.htmx:
        template += "#live"
    return render(request, template, context)


@require_POST
def experiment_action_view(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    _require(request)
    experiment = get_object_or_404(Experiment, pk=pk)
    try:
        if action == "cancel":
            experiment_cancel(experiment_id=pk)
            messages.success(request, "Cancelled: no more items start; scored items stay.")
        elif action == "resume":
            counts = experiment_resume(experiment_id=pk)
            experiment_start(experiment=experiment)
            messages.success(
                request,
                f"Resumed: {counts['requeued']} items back in the queue, {counts['scored']} scored.",
            )
        elif action == "retry":
            n = experiment_retry_failed(experiment_id=pk)
            experiment_start(experiment=experiment)
            messages.success(request, f"Retrying {n} failed items.")
        else:
            raise Http404("no such action")
    except ExperimentError as exc:
        messages.error(request, str(exc))
    return redirect(experiment.get_absolute_url())


def experiment_compare_view(request: HttpRequest) -> HttpResponse:
    try:
        ids = [int(i) for i in request.GET.getlist("id")]
    except ValueError as exc:
        raise Http404("experiment ids are numbers") from exc
    found = {
        e.id: e for e in Experiment.objects.select_related("agent", "dataset").filter(pk__in=ids)
    }
    experiments = [found[i] for i in ids if i in found]
    if len(experiments) < 2:
        messages.error(request, "Pick at least two experiments to compare.")
        return redirect("agents:experiment_list")
    comparison = experiments_compare(experiments=experiments)
    chart = []
    for row in comparison["by_category"]:
        chart.append(
            {
                "category": row["category"],
                "bars": [
                    {"experiment": e, "score": s, "width": round((s or 0) * 100)}
                    for e, s in zip(experiments, row["scores"], strict=True)
                ],
            }
        )
    # Cost against score as an SVG scatter: x is accuracy, y tokens per solved item.
    most = max(((e.scores or {}).get("tokens_per_solved") or 0) for e in experiments) or 1
    cost = []
    for index, e in enumerate(experiments):
        accuracy = (e.scores or {}).get("accuracy")
        tokens = (e.scores or {}).get("tokens_per_solved") or 0
        if accuracy is not None:
            cost.append(
                {
                    "experiment": e,
                    "series": index,
                    "x": round(50 + accuracy * 360, 1),
                    "y": round(190 - tokens / most * 170, 1),
                }
            )
    return render(
        request,
        "agents/evals/experiment_compare.html",
        {"experiments": experiments, "comparison": comparison, "chart": chart, "cost": cost},
    )
