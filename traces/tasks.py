"""Celery tasks of traces: thin, they take ids and call a service. The upkeep task is
run by Celery beat (``CELERY_BEAT_SCHEDULE``)."""

from __future__ import annotations

import logging

from celery import shared_task

logger = logging.getLogger(__name__)


@shared_task(name="traces.tasks.export_run_task")
def export_run_task(export_id: str) -> None:
    from traces.export_services import export_run

    export_run(export_id=export_id)


@shared_task(name="traces.tasks.traces_upkeep_task", ignore_result=True)
def traces_upkeep_task() -> None:
    """Close ingested traces that stopped receiving spans, apply the retention policy
    (TOOLTRAIL_RETENTION_DAYS, TOOLTRAIL_RETENTION_MAX_TRACES), then fold the hours that
    ended into the dashboard's roll-up."""
    from .rollup_services import rollup_fold
    from .services import traces_apply_retention, traces_close_idle_ingested

    closed = traces_close_idle_ingested()
    deleted = traces_apply_retention()
    rollup_fold()
    if closed or deleted:
        logger.info(
            "trace upkeep: closed %d idle ingested traces, deleted %d", len(closed), deleted
        )
