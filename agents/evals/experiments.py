"""Experiments: an agent run on every item of a dataset, scored item by item.

Each item runs as an ordinary trace started through ``agents.services.agent_run_start``
(so it opens in the debugger, can be annotated and forked) and is scored from what the
trace recorded. Fan-out: ``experiment_tick`` claims up to ``concurrency`` pending items
and enqueues one Celery task per item; each finished item ticks again, so the experiment
drains at its concurrency limit on any number of workers. ``experiment_run_here`` runs
the items one after another in the calling process instead (no worker needed).

Nothing is redone: a scored item stays scored. ``experiment_resume`` picks up after a
crash (items claimed but never started go back to pending, items whose trace finished
are scored), ``experiment_retry_failed`` runs the errored items again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import statistics
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.utils import timezone

from traces.models import Step, Trace
from traces.services import TraceError, trace_cancel

from .datasets import FORMAT_BFCL, item_tool_specs
from .models import Dataset, DatasetItem, Experiment, ExperimentResult
from .scoring import item_score, wilson_interval

logger = logging.getLogger(__name__)


class ExperimentError(Exception):
    """The experiment cannot take this action; the message says why."""


def experiment_create(
    *,
    agent,
    dataset: Dataset,
    limit: int | None = None,
    concurrency: int = 4,
    name: str = "",
    user=None,
    judge=None,
    rubric: str = "",
) -> Experiment:
    """Create the experiment and one pending result per item (the first ``limit``).
    With ``judge`` (a ModelEndpoint), every answer is also graded against ``rubric``."""
    if limit is not None and limit < 1:
        raise ExperimentError("--limit must be at least 1")
    if concurrency < 1:
        raise ExperimentError("concurrency must be at least 1")
    items = list(dataset.items.order_by("index").values_list("id", flat=True)[:limit])
    if not items:
        raise ExperimentError(f"dataset {dataset.name!r} has no items")
    with transaction.atomic():
        experiment = Experiment.objects.create(
            name=name or f"{agent.slug} on {dataset.name}",
            agent=agent,
            dataset=dataset,
            limit=limit,
            concurrency=concurrency,
            created_by=user if user is not None and user.is_authenticated else None,
            judge=judge,
            rubric=rubric,
        )
        ExperimentResult.objects.bulk_create(
            [ExperimentResult(experiment=experiment, item_id=item_id) for item_id in items]
        )
    return experiment


def experiment_start(*, experiment: Experiment) -> None:
    """Fan the items out over the workers (after commit)."""
    from agents.tasks import experiment_tick_task

    transaction.on_commit(lambda: experiment_tick_task.delay(experiment.id))


def _claim(experiment: Experiment, slots: int) -> list[int]:
    ids = list(
        experiment.results.filter(status=ExperimentResult.Status.PENDING)
        .order_by("item__index")
        .values_list("id", flat=True)[:slots]
    )
    ExperimentResult.objects.filter(id__in=ids).update(
        status=ExperimentResult.Status.RUNNING, trace_id=None, updated_at=timezone.now()
    )
    return ids


def experiment_tick(*, experiment_id: int) -> list[int]:
    """Claim pending items up to the concurrency limit and enqueue each one's task; end
    the experiment when nothing is pending or running. Returns the claimed result ids."""
    from agents.tasks import experiment_item_task

    with transaction.atomic():
        experiment = Experiment.objects.select_for_update().get(pk=experiment_id)
        if experiment.is_finished:
            return []
        if experiment.status == Experiment.Status.QUEUED:
            experiment.status = Experiment.Status.RUNNING
            experiment.started_at = timezone.now()
            experiment.save(update_fields=["status", "started_at"])
        running = experiment.results.filter(status=ExperimentResult.Status.RUNNING).count()
        claimed = _claim(experiment, max(0, experiment.concurrency - running))
        for result_id in claimed:
            transaction.on_commit(lambda rid=result_id: experiment_item_task.delay(rid))
        if not claimed and running == 0:
            _finish(experiment)
    return claimed


def _item_metadata(experiment: Experiment, item: DatasetItem) -> dict[str, Any]:
    evaluation: dict[str, Any] = {
        "experiment": experiment.id,
        "item": item.id,
        "messages": item.messages,
    }
    if item.functions:
        # The item's functions are offered instead of the agent's toolset; the calls of
        # the first reply are recorded (not run) and scored, as BFCL does.
        evaluation["tools"] = item_tool_specs(item.functions, item.function_format)
        evaluation["single_turn"] = True
    return {"eval": evaluation}


def _calls_of(trace: Trace) -> list[dict[str, Any]]:
    calls = []
    for name, arguments in (
        Step.objects.filter(trace=trace, kind=Step.Kind.TOOL_CALL)
        .order_by("seq")
        .values_list("name", "input")
    ):
        calls.append({"name": name, "arguments": arguments})
    return calls


def _metrics_of(trace: Trace, calls: list) -> dict[str, Any]:
    return {
        "steps": trace.step_count,
        "tool_calls": len(calls),
        "tokens": trace.prompt_tokens + trace.completion_tokens,
        "latency_s": round(trace.duration_seconds or 0.0, 3),
        "trace_status": trace.status,
    }


def _judge_score(experiment: Experiment, item: DatasetItem, trace: Trace, calls: list) -> float:
    """The judge endpoint's grade (0..1) of one item's answer; 0 when the judge fails or
    answers something unusable (its reason goes to the log, never a silent pass)."""
    from agents.llm import ModelError, backend_for

    from .scorers.judge import DEFAULT_RUBRIC, judge_grade

    backend = backend_for(experiment.judge)

    def complete(prompt: str) -> str:
        return backend.complete([{"role": "user", "content": prompt}], []).content

    try:
        score, reason = judge_grade(
            complete=complete,
            task=item.question,
            answer=trace.output or json.dumps(calls),
            rubric=experiment.rubric or DEFAULT_RUBRIC,
            reference=item.expected_answer,
        )
    except (ModelError, ValueError) as exc:
        logger.warning("the judge could not grade item %s: %s", item.id, exc)
        return 0.0
    return score


def result_score(*, result: ExperimentResult) -> ExperimentResult:
    """Score a result from its finished trace."""
    trace = Trace.objects.get(pk=result.trace_id)
    item = result.item
    calls = _calls_of(trace)
    if trace.status != Trace.Status.SUCCEEDED and not calls and trace.error:
        result.status = ExperimentResult.Status.ERROR
        result.valid = False
        result.error_type = "run_failed"
        result.reason = f"the run ended {trace.status}: {trace.error}"[:2000]
        scores: dict[str, float] = {}
    else:
        judged = item_score(
            category=item.category,
            language=item.language,
            function_format=item.function_format,
            functions=item.functions,
            expected_calls=item.expected_calls,
            expected_answer=item.expected_answer,
            calls=calls,
            answer=trace.output if item.function_format != FORMAT_BFCL else "",
        )
        if result.experiment.judge_id:
            judged["scores"]["llm_judge"] = _judge_score(result.experiment, item, trace, calls)
        result.status = ExperimentResult.Status.SCORED
        result.valid = judged["valid"]
        result.error_type = judged["error_type"][:100]
        result.reason = judged["reason"][:2000]
        scores = judged["scores"]
    result.output_calls = calls
    result.metrics = {**_metrics_of(trace, calls), "scores": scores}
    result.save(
        update_fields=[
            "status",
            "valid",
            "error_type",
            "reason",
            "output_calls",
            "metrics",
            "updated_at",
        ]
    )
    return result


def experiment_item_run(*, result_id: int, tick: bool = True) -> ExperimentResult | None:
    """Run one claimed item as a trace in this process and score it; then tick."""
    from agents.runner import trace_run
    from agents.services import RunError, agent_run_start

    with transaction.atomic():
        result = (
            ExperimentResult.objects.select_for_update()
            .select_related("experiment__agent", "item")
            .get(pk=result_id)
        )
        experiment = result.experiment
        if result.status != ExperimentResult.Status.RUNNING or result.trace_id is not None:
            return None  # already started elsewhere (a redelivered task), or cancelled
        if experiment.is_finished or experiment.cancel_requested:
            result.status = ExperimentResult.Status.PENDING
            result.save(update_fields=["status", "updated_at"])
            return None
        try:
            trace = agent_run_start(
                agent=experiment.agent,
                input=result.item.question or "(see the conversation)",
                user=experiment.created_by,
                metadata=_item_metadata(experiment, result.item),
                enqueue=False,
            )
        except RunError as exc:
            result.status = ExperimentResult.Status.ERROR
            result.reason = str(exc)
            result.save(update_fields=["status", "reason", "updated_at"])
            return result
        result.trace_id = trace.id
        result.attempts += 1
        result.save(update_fields=["trace_id", "attempts", "updated_at"])
    try:
        trace_run(trace_id=trace.id)
    except Exception as exc:  # noqa: BLE001 - trace_run records its own failures
        logger.exception("experiment item %s crashed", result_id)
        result.status = ExperimentResult.Status.ERROR
        result.reason = f"{type(exc).__name__}: {exc}"
        result.save(update_fields=["status", "reason", "updated_at"])
    else:
        result = result_score(result=result)
    if tick:
        experiment_tick(experiment_id=experiment.id)
    return result


def experiment_run_here(
    *, experiment: Experiment, progress: Callable[[Experiment], None] | None = None
) -> Experiment:
    """Run every pending item one after another in this process."""
    with transaction.atomic():
        experiment = Experiment.objects.select_for_update().get(pk=experiment.pk)
        if experiment.status == Experiment.Status.QUEUED:
            experiment.status = Experiment.Status.RUNNING
            experiment.started_at = timezone.now()
            experiment.save(update_fields=["status", "started_at"])
    while True:
        experiment.refresh_from_db()
        if experiment.cancel_requested or experiment.is_finished:
            break
        with transaction.atomic():
            claimed = _claim(experiment, 1)
        if not claimed:
            break
        experiment_item_run(result_id=claimed[0], tick=False)
        if progress:
            progress(experiment)
    with transaction.atomic():
        experiment = Experiment.objects.select_for_update().get(pk=experiment.pk)
        if (
            not experiment.is_finished
            and not experiment.results.filter(
                status__in=[ExperimentResult.Status.PENDING, ExperimentResult.Status.RUNNING]
            ).exists()
        ):
            _finish(experiment)
    return experiment


def experiment_resume(*, experiment_id: int) -> dict[str, int]:
    """Pick up after a crash: claimed-but-unstarted items go back to pending, items whose
    trace has finished are scored; then fan out again. Finished items are not redone."""
    counts = {"requeued": 0, "scored": 0}
    with transaction.atomic():
        experiment = Experiment.objects.select_for_update().get(pk=experiment_id)
        if experiment.status in (Experiment.Status.SUCCEEDED, Experiment.Status.FAILED):
            experiment.status = Experiment.Status.RUNNING
            experiment.ended_at = None
            experiment.save(update_fields=["status", "ended_at"])
        for result in experiment.results.filter(
            status=ExperimentResult.Status.RUNNING
        ).select_related("item"):
            if result.trace_id is None:
                result.status = ExperimentResult.Status.PENDING
                result.save(update_fields=["status", "updated_at"])
                counts["requeued"] += 1
                continue
            trace = Trace.objects.filter(pk=result.trace_id).only("status").first()
            if trace is None:
                result.status, result.trace_id = ExperimentResult.Status.PENDING, None
                result.save(update_fields=["status", "trace_id", "updated_at"])
                counts["requeued"] += 1
            elif trace.status in Trace.FINISHED:
                result_score(result=result)
                counts["scored"] += 1
    return counts


def experiment_retry_failed(*, experiment_id: int) -> int:
    """Put the items that errored back to pending (their old traces stay as they are)."""
    with transaction.atomic():
        experiment = Experiment.objects.select_for_update().get(pk=experiment_id)
        n = experiment.results.filter(status=ExperimentResult.Status.ERROR).update(
            status=ExperimentResult.Status.PENDING, trace_id=None, updated_at=timezone.now()
        )
        if n and experiment.is_finished:
            experiment.status = Experiment.Status.RUNNING
            experiment.ended_at = None
            experiment.cancel_requested = False
            experiment.save(update_fields=["status", "ended_at", "cancel_requested"])
    return n


def experiment_cancel(*, experiment_id: int) -> Experiment:
    """Stop starting items and cancel the runs in progress; scored items stay."""
    with transaction.atomic():
        experiment = Experiment.objects.select_for_update().get(pk=experiment_id)
        if experiment.is_finished:
            raise ExperimentError(f"the experiment is already {experiment.status}")
        experiment.cancel_requested = True
        experiment.status = Experiment.Status.CANCELLED
        experiment.ended_at = timezone.now()
        experiment.scores = experiment_summary(experiment=experiment)
        experiment.save(update_fields=["cancel_requested", "status", "ended_at", "scores"])
        running = list(
            experiment.results.filter(status=ExperimentResult.Status.RUNNING).values_list(
                "trace_id", flat=True
            )
        )
    for trace_id in running:
        if trace_id:
            with contextlib.suppress(TraceError):  # it finished meanwhile
                trace_cancel(trace_id=trace_id)
    return experiment


def _finish(experiment: Experiment) -> None:
    experiment.status = Experiment.Status.SUCCEEDED
    experiment.ended_at = timezone.now()
    experiment.scores = experiment_summary(experiment=experiment)
    experiment.save(update_fields=["status", "ended_at", "scores"])


def experiment_summary(*, experiment: Experiment) -> dict[str, Any]:
    """Accuracy with its 95% interval, the mean of every score, per-category accuracy and
    efficiency figures (MCP-RADAR style: steps, tool calls, tokens and latency per solved item)."""
    rows = list(
        experiment.results.exclude(
            status__in=[ExperimentResult.Status.PENDING, ExperimentResult.Status.RUNNING]
        )
        .select_related("item")
        .only("valid", "metrics", "item__category", "status")
    )
    n = len(rows)
    solved = [r for r in rows if r.valid]
    summary: dict[str, Any] = {"items_scored": n, "accuracy": (len(solved) / n) if n else None}
    interval = wilson_interval(len(solved), n)
    summary["accuracy_ci95"] = list(interval) if interval else None
    totals: dict[str, list[float]] = defaultdict(list)
    categories: dict[str, list[int]] = defaultdict(list)
    for row in rows:
        for key, value in ((row.metrics or {}).get("scores") or {}).items():
            totals[key].append(value)
        categories[row.item.category or "all"].append(int(bool(row.valid)))
    for key, values in sorted(totals.items()):
        summary[key] = statistics.fmean(values)
    summary["by_category"] = {c: sum(v) / len(v) for c, v in sorted(categories.items())}
    if solved:
        for figure in ("steps", "tool_calls", "tokens", "latency_s"):
            summary[f"{figure}_per_solved"] = statistics.fmean(
                (r.metrics or {}).get(figure, 0) for r in solved
            )
    summary["errors"] = sum(1 for r in rows if r.status == ExperimentResult.Status.ERROR)
    return summary
