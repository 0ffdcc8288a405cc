"""Celery tasks: thin, they take ids and call a service."""

from celery import shared_task


# acks_late, ignore_result and the agents queue come from settings (CELERY_*).
@shared_task(name="agents.tasks.agent_run_task")
def agent_run_task(trace_id: str) -> None:
    from agents.runner import trace_run

    trace_run(trace_id=trace_id)


@shared_task(name="agents.tasks.experiment_tick_task")
def experiment_tick_task(experiment_id: int) -> None:
    from agents.evals.experiments import experiment_tick

    experiment_tick(experiment_id=experiment_id)


@shared_task(name="agents.tasks.experiment_item_task")
def experiment_item_task(result_id: int) -> None:
    from agents.evals.experiments import experiment_item_run

    experiment_item_run(result_id=result_id)


@shared_task(name="agents.tasks.job_run_task")
def job_run_task(job_id: int) -> None:
    from agents.training.jobs import job_run

    job_run(job_id=job_id)


@shared_task(name="agents.tasks.queue_suggest_task")
def queue_suggest_task(queue_id: int) -> None:
    """Judge suggestions for an annotation queue (requested by traces by this name)."""
    from agents.judge import queue_suggest

    queue_suggest(queue_id=queue_id)
