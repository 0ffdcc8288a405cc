"""From an experiment's failures to an annotation queue: the items it got wrong (or
that errored) become a queue of their traces' steps, for people to label and correct."""

from __future__ import annotations

from typing import Any

from traces.annotation_models import AnnotationQueue
from traces.annotation_services import QueueError, queue_create_from_failures

from .models import Experiment
from .selectors import experiment_results


def experiment_failures_queue_create(
    *, experiment: Experiment, name: str = "", created_by=None, **settings: Any
) -> AnnotationQueue:
    """A queue of the steps of every failed item's trace (``settings`` as for
    ``traces.annotation_services.queue_create``: step_kinds, overlap, annotators…).
    Raises QueueError when no failed item has a trace."""
    trace_ids = [
        r.trace_id
        for r in experiment_results(experiment=experiment, failed_only=True)
        if r.trace_id is not None
    ]
    if not trace_ids:
        raise QueueError(f"experiment {experiment} has no failed item with a trace to label")
    return queue_create_from_failures(
        name=name or f"Failures of {experiment}",
        trace_ids=trace_ids,
        created_by=created_by,
        **settings,
    )
