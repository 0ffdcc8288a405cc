"""Pages for model artifacts and GPU jobs. Views parse input, call a service, render."""

from __future__ import annotations

from pathlib import Path

import yaml
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.text import slugify
from django.views.decorators.http import require_POST

from agents.evals.models import Dataset
from agents.models import Agent

from .artifacts import ArtifactError, artifact_register
from .jobs import JobError, job_cancel, job_create, job_enqueue
from .merge import MergeError
from .merge_job import merge_config_check
from .merge_search import search_space_check
from .models import Job, ModelArtifact
from .promote import PromoteError, promote_and_compare
from .sft import DEFAULTS

PERMISSION = "agents.run_job"


def _require(request: HttpRequest) -> None:
    if not request.user.has_perm(PERMISSION):
        raise PermissionDenied("your role cannot add artifacts or run GPU jobs")


def _name(value: str) -> str:
    if not value or slugify(value) != value:
        raise JobError(
            "the name must be a slug: letters, digits, - and _"
            + (f" (e.g. {slugify(value)!r})" if value else "")
        )
    return value


def artifact_list_view(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        _require(request)
        try:
            artifact = artifact_register(
                name=_name(request.POST.get("name", "")),
                path=Path(request.POST.get("path", "")),
                source=ModelArtifact.Source.PATH,
            )
        except (ArtifactError, JobError) as exc:
            messages.error(request, str(exc))
            return redirect("agents:artifact_list")
        return redirect(artifact.get_absolute_url())
    return render(
        request,
        "agents/training/artifact_list.html",
        {
            "artifacts": ModelArtifact.objects.select_related("made_by"),
            "can_edit": request.user.has_perm(PERMISSION),
        },
    )


def _lineage_graph(artifact: ModelArtifact) -> dict:
    """Boxes and arrows for an SVG: parents → the job that made it → it → its children."""
    parents = list(artifact.parents.all())
    children = list(artifact.children.all())
    columns = [
        [{"label": p.name, "url": p.get_absolute_url(), "kind": "artifact"} for p in parents],
        [
            {
                "label": f"{artifact.made_by.get_kind_display()} #{artifact.made_by.id}",
                "url": artifact.made_by.get_absolute_url(),
                "kind": "job",
            }
        ]
        if artifact.made_by
        else [],
        [{"label": artifact.name, "url": artifact.get_absolute_url(), "kind": "self"}],
        [{"label": c.name, "url": c.get_absolute_url(), "kind": "artifact"} for c in children],
    ]
    columns = [c for c in columns if c]
    height = max(len(c) for c in columns) * 50 + 20
    nodes, x = [], 10
    for column in columns:
        top = (height - len(column) * 50) / 2 + 10
        for row, node in enumerate(column):
            node.update(x=x, y=top + row * 50, cx=x + 80, cy=top + row * 50 + 15)
            nodes.append(node)
        x += 200
    edges = []
    for left, right in zip(columns, columns[1:], strict=False):
        for a in left:
            for b in right:
                edges.append({"x1": a["x"] + 160, "y1": a["cy"], "x2": b["x"], "y2": b["cy"]})
    return {"nodes": nodes, "edges": edges, "width": x, "height": height}


def artifact_detail_view(request: HttpRequest, name: str) -> HttpResponse:
    artifact = get_object_or_404(ModelArtifact.objects.select_related("made_by"), name=name)
    return render(
        request,
        "agents/training/artifact_detail.html",
        {
            "artifact": artifact,
            "graph": _lineage_graph(artifact),
            "endpoints": artifact.endpoints.all(),
            "agents": Agent.objects.order_by("name"),
            "datasets": Dataset.objects.order_by("name"),
            "can_edit": request.user.has_perm(PERMISSION),
            "config": yaml.safe_dump(artifact.config, sort_keys=False) if artifact.config else "",
        },
    )


@require_POST
def artifact_promote_view(request: HttpRequest, name: str) -> HttpResponse:
    _require(request)
    artifact = get_object_or_404(ModelArtifact, name=name)
    agent = get_object_or_404(Agent, slug=request.POST.get("agent", ""))
    dataset = Dataset.objects.filter(name=request.POST.get("dataset", "")).first()
    try:
        if dataset is None:
            from .promote import artifact_promote

            _, copy = artifact_promote(artifact=artifact, agent=agent)
            messages.success(
                request, f"{copy.name} is ready: it runs {agent.name}'s set-up on {artifact.name}."
            )
            return redirect(copy.get_absolute_url())
        limit = int(request.POST["limit"]) if request.POST.get("limit") else None
        _, copy, experiments = promote_and_compare(
            artifact=artifact, agent=agent, dataset=dataset, limit=limit, user=request.user
        )
    except (PromoteError, ValueError) as exc:
        messages.error(request, str(exc))
        return redirect(artifact.get_absolute_url())
    return redirect(f"/experiments/compare/?id={experiments[0].id}&id={experiments[1].id}")


def job_list_view(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "agents/training/job_list.html",
        {
            "jobs": Job.objects.select_related("output")[:200],
            "artifacts": ModelArtifact.objects.order_by("name"),
            "can_edit": request.user.has_perm(PERMISSION),
            "defaults": DEFAULTS,
            "form": {},
        },
    )


@require_POST
def job_new_view(request: HttpRequest, kind: str) -> HttpResponse:
    _require(request)
    form = request.POST
    try:
        name = _name(form.get("name", ""))
        if kind == Job.Kind.MERGE:
            text = form.get("yaml", "")
            merge_config_check(text)
            config = {"yaml": text, "seed": int(form.get("seed") or 0)}
        elif kind == Job.Kind.SFT:
            if not ModelArtifact.objects.filter(name=form.get("base", "")).exists():
                raise JobError("choose a base artifact")
            if not Path(form.get("dataset", "")).is_dir():
                raise JobError(
                    f"{form.get('dataset')!r} is not a directory on the server (an export_dataset --format sft folder)"
                )
            config = {
                "base": form["base"],
                "dataset": str(Path(form["dataset"]).resolve()),
                **{k: type(DEFAULTS[k])(form[k]) for k in DEFAULTS if form.get(k)},
            }
        elif kind == Job.Kind.MERGE_SEARCH:
            config = yaml.safe_load(form.get("yaml", "")) or {}
            if not isinstance(config, dict):
                raise JobError("the search config must be a YAML mapping")
            search_space_check(config)
        else:
            raise Http404("no such job kind")
        job = job_create(kind=kind, name=name, config=config, user=request.user)
    except (JobError, MergeError, ValueError, yaml.YAMLError) as exc:
        messages.error(request, str(exc))
        return redirect("agents:job_list")
    job_enqueue(job=job)
    return redirect(job.get_absolute_url())


def _loss_curve(series: list[float]) -> dict | None:
    if len(series) < 2:
        return None
    low, high = min(series), max(series)
    span = (high - low) or 1.0
    width, height = 400, 160
    points = " ".join(
        f"{40 + i * (width - 50) / (len(series) - 1):.1f},{10 + (high - v) * (height - 30) / span:.1f}"
        for i, v in enumerate(series)
    )
    return {"points": points, "low": low, "high": high, "steps": len(series)}


def _pareto(job: Job) -> dict | None:
    rows = job.metrics.get("candidates") or []
    names = job.metrics.get("datasets") or job.config.get("datasets") or []
    if len(names) < 2 or not rows:
        return None
    dots = [
        {
            "index": r["index"],
            "x": round(40 + r["scores"][0] * 340, 1),
            "y": round(190 - r["scores"][1] * 170, 1),
            "pareto": r.get("pareto"),
        }
        for r in rows
        if len(r.get("scores", [])) >= 2
    ]
    return {"dots": dots, "a": names[0], "b": names[1]}


def job_detail_view(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(Job.objects.select_related("output"), pk=pk)
    context = {
        "job": job,
        "loss": _loss_curve(job.metrics.get("loss_series") or []),
        "pareto": _pareto(job),
        "metrics": {
            k: v
            for k, v in job.metrics.items()
            if not k.endswith("_series") and k not in ("candidates", "datasets")
        },
        "candidates": job.metrics.get("candidates") or [],
        "config": job.config.get("yaml")
        if job.kind == Job.Kind.MERGE
        else yaml.safe_dump(job.config, sort_keys=False),
        "can_edit": request.user.has_perm(PERMISSION),
        "agents": Agent.objects.order_by("name"),
        "datasets": Dataset.objects.order_by("name"),
    }
    template = "agents/training/job_detail.html"
    if request.htmx:
        template += "#live"
    return render(request, template, context)


@require_POST
def job_action_view(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    _require(request)
    job = get_object_or_404(Job, pk=pk)
    try:
        if action == "cancel":
            job_cancel(job_id=pk)
            messages.success(
                request, "Cancel asked: the job stops within one tensor or one optimizer step."
            )
            return redirect(job.get_absolute_url())
        if action == "rerun":
            name = _name(request.POST.get("name", ""))
            text = request.POST.get("config", "")
            if job.kind == Job.Kind.MERGE:
                merge_config_check(text)
                config = {**job.config, "yaml": text}
            else:
                config = yaml.safe_load(text) or {}
                if not isinstance(config, dict):
                    raise JobError("the settings must be a YAML mapping")
            new = job_create(kind=job.kind, name=name, config=config, user=request.user)
        elif action == "promote":
            index = int(request.POST.get("candidate", ""))
            candidate = next(r for r in job.metrics.get("candidates") or [] if r["index"] == index)
            new = job_create(
                kind=Job.Kind.MERGE,
                name=_name(request.POST.get("name", "")),
                config={
                    "yaml": candidate["yaml"],
                    "seed": job.config.get("seed", 0),
                    "promoted_from": {"job": job.id, "candidate": index},
                },
                user=request.user,
            )
        else:
            raise Http404("no such action")
    except (JobError, MergeError, ValueError, StopIteration, yaml.YAMLError) as exc:
        messages.error(request, str(exc) or "no such candidate")
        return redirect(job.get_absolute_url())
    job_enqueue(job=new)
    return redirect(new.get_absolute_url())
