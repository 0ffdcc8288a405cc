"""Reads for the evaluation pages: progress of an experiment, comparison of several."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.db.models import Count, Q

from .models import Experiment, ExperimentResult
from .scoring import mcnemar_exact, wilson_interval

DONE = (ExperimentResult.Status.SCORED, ExperimentResult.Status.ERROR)


def experiment_progress(*, experiment: Experiment) -> dict[str, Any]:
    counts = experiment.results.aggregate(
        total=Count("id"),
        done=Count("id", filter=Q(status__in=DONE)),
        running=Count("id", filter=Q(status=ExperimentResult.Status.RUNNING)),
        errors=Count("id", filter=Q(status=ExperimentResult.Status.ERROR)),
        valid=Count("id", filter=Q(valid=True)),
    )
    done = counts["done"]
    counts["accuracy"] = counts["valid"] / done if done else None
    interval = wilson_interval(counts["valid"], done)
    counts["ci_low"], counts["ci_high"] = interval if interval else (None, None)
    counts["percent"] = round(100 * done / counts["total"]) if counts["total"] else 0
    return counts


def experiment_results(*, experiment: Experiment, failed_only: bool = False):
    qs = experiment.results.select_related("item").order_by("item__index")
    if failed_only:
        qs = qs.filter(Q(valid=False) | Q(status=ExperimentResult.Status.ERROR))
    return qs


def experiments_compare(*, experiments: list[Experiment]) -> dict[str, Any]:
    """Per-category accuracy of each experiment, the items whose verdict differs between
    the first (the baseline) and each other, and an exact McNemar test on the items both
    scored. Items are matched by dataset item."""
    verdicts: dict[int, dict[int, bool]] = {}
    categories: dict[str, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    labels: dict[int, str] = {}
    for experiment in experiments:
        rows = experiment.results.filter(status__in=DONE).values_list(
            "item_id", "valid", "item__category", "item__external_id"
        )
        verdicts[experiment.id] = {}
        for item_id, valid, category, external_id in rows:
            verdicts[experiment.id][item_id] = bool(valid)
            categories[category or "all"][experiment.id].append(int(bool(valid)))
            labels[item_id] = external_id or str(item_id)
    by_category = [
        {
            "category": category,
            "scores": [(sum(v) / len(v) if (v := per.get(e.id)) else None) for e in experiments],
        }
        for category, per in sorted(categories.items())
    ]
    baseline = experiments[0]
    pairs = []
    for other in experiments[1:]:
        shared = sorted(set(verdicts[baseline.id]) & set(verdicts[other.id]))
        fixed = [i for i in shared if not verdicts[baseline.id][i] and verdicts[other.id][i]]
        broke = [i for i in shared if verdicts[baseline.id][i] and not verdicts[other.id][i]]
        pairs.append(
            {
                "other": other,
                "shared": len(shared),
                "fixed": [(i, labels[i]) for i in fixed],
                "broke": [(i, labels[i]) for i in broke],
                "p_value": mcnemar_exact(len(broke), len(fixed)),
            }
        )
    return {"by_category": by_category, "pairs": pairs}
