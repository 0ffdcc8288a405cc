"""Celery tasks of traces: thin, they take ids and call a service."""

from celery import shared_task


@shared_task(name="traces.tasks.export_run_task")
def export_run_task(export_id: str) -> None:
    from traces.export_services import export_run

    export_run(export_id=export_id)
