"""Starting and cancelling agent runs."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction

from traces.models import Trace
from traces.services import trace_create, trace_finish, trace_requeue_note, traces_queued_lost

from .models import Agent


class RunError(Exception):
    """A run cannot be started or cancelled; the message says why."""


class EnqueueError(RunError):
    """The task queue (the broker) cannot be reached."""


def agent_run_start(
    *,
    agent: Agent,
    input: str,
    user=None,
    metadata: dict | None = None,
    enqueue: bool = True,
) -> Trace:
    """Create a queued trace and enqueue its run on the ``agents`` queue after commit.

    If the broker cannot be reached the trace ends ``failed`` with the reason (nothing
    stays queued forever) and RunError is raised. ``metadata`` is merged into the trace's
    (an evaluation item puts its functions and messages there); ``enqueue=False`` leaves
    the queued trace for the caller to run (``agents.runner.trace_run``) in its own process.
    """
    from .tasks import agent_run_task

    text = (input or "").strip()
    if not text:
        raise RunError("the input is empty: say what the agent should do")
    with transaction.atomic():
        trace = trace_create(
            name=agent.name,
            input=text,
            agent_slug=agent.slug,
            created_by=user if user is not None and user.is_authenticated else None,
            metadata={
                "agent_id": agent.id,
                "endpoint": agent.endpoint.name,
                "strategy": agent.strategy,
                **(metadata or {}),
            },
        )
        if not enqueue:
            return trace

        def send() -> None:
            try:
                # The queue comes from CELERY_TASK_ROUTES.
                agent_run_task.apply_async(args=[str(trace.id)], retry=False)
            except Exception as exc:
                trace_finish(
                    trace_id=trace.id,
                    status=Trace.Status.FAILED,
                    error=f"could not enqueue the run: {exc}",
                )
                raise EnqueueError(f"could not reach the task queue: {exc}") from exc

        # After commit, so a worker never looks for a trace it cannot see yet (also
        # when a caller wraps this in a transaction of its own).
        transaction.on_commit(send)
    return trace


REQUEUE_TRIES = 3


def runs_requeue_lost(*, after: float | None = None) -> list[Trace]:
    """Queued runs no worker took within ``after`` seconds (their task was lost with a
    restarted Redis or a worker killed before it took it) are enqueued again — a trace
    runs once however many messages name it — and after three tries end ``failed``.
    Returns the traces ended."""
    from .tasks import agent_run_task

    seconds = settings.TOOLTRAIL_QUEUED_LOST_AFTER_SECONDS if after is None else after
    ended = []
    for trace_id in traces_queued_lost(after=seconds):
        tries = trace_requeue_note(trace_id=trace_id)
        if tries is None:
            continue
        if tries > REQUEUE_TRIES:
            ended.append(
                trace_finish(
                    trace_id=trace_id,
                    status=Trace.Status.FAILED,
                    error=f"no worker took the run: still queued after {REQUEUE_TRIES} "
                    f"tries of {seconds:g} s each (is a worker running on the agents queue?)",
                )
            )
        else:
            agent_run_task.apply_async(args=[str(trace_id)], retry=False)
    return ended
