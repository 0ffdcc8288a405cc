"""Periodic upkeep of traces, run by Celery beat (``CELERY_BEAT_SCHEDULE``)."""

from __future__ import annotations

import logging

from celery import shared_task

from .services import traces_apply_retention, traces_close_idle_ingested

logger = logging.getLogger(__name__)


@shared_task(name="traces.tasks.traces_upkeep_task", ignore_result=True)
def traces_upkeep_task() -> None:
    """Close ingested traces that stopped receiving spans, then apply the retention
    policy (TOOLTRAIL_RETENTION_DAYS, TOOLTRAIL_RETENTION_MAX_TRACES)."""
    closed = traces_close_idle_ingested()
    deleted = traces_apply_retention()
    if closed or deleted:
        logger.info(
            "trace upkeep: closed %d idle ingested traces, deleted %d", len(closed), deleted
        )
