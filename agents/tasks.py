"""Celery tasks: thin, they take ids and call a service."""

from celery import shared_task


# acks_late, ignore_result and the agents queue come from settings (CELERY_*).
@shared_task(name="agents.tasks.agent_run_task")
def agent_run_task(trace_id: str) -> None:
    from agents.runner import trace_run

    trace_run(trace_id=trace_id)


@shared_task(name="agents.tasks.queue_suggest_task")
def queue_suggest_task(queue_id: int) -> None:
    """Judge suggestions for an annotation queue (requested by traces by this name)."""
    from agents.judge import queue_suggest

    queue_suggest(queue_id=queue_id)
