"""A Celery worker that dies mid-run (SIGKILL, OOM): what it saved stays, and the reaper in
the session's live worker ends the trace ``failed`` instead of leaving it ``running``."""

from __future__ import annotations

import os
import signal

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_run_whose_worker_is_killed_keeps_its_steps_and_ends_failed(
    stack, scripted_agent, make_user
):
    from agents.tasks import agent_run_task
    from tooltrail.celery import app
    from traces.models import Step, Trace
    from traces.services import trace_create

    turns = 40
    agent = scripted_agent(
        [
            {
                "content": f"turn {n}",
                "tool_calls": [{"name": "calculator", "arguments": {"expression": f"{n} + 1"}}],
                "delay_ms": 150,
            }
            for n in range(turns)
        ]
        + [{"content": "done"}],
        max_steps=turns + 1,
    )
    # Its own queue, so only the worker about to be killed can take the run; emptied
    # first of any run an earlier, killed session left there.
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge("killme")
    worker = stack.start_worker(queues="killme", name=f"killme-{os.getpid()}@%h")
    trace = trace_create(
        name=agent.name,
        input="keep counting",
        agent_slug=agent.slug,
        metadata={"agent_id": agent.id, "endpoint": agent.endpoint.name},
    )
    agent_run_task.apply_async(args=[str(trace.id)], queue="killme")

    def saved_seqs() -> list[int]:
        return list(
            Step.objects.filter(trace_id=trace.id).order_by("seq").values_list("seq", flat=True)
        )

    stack.wait_until(lambda: len(saved_seqs()) >= 5, what="the doomed worker to save some steps")
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait(timeout=10)
    before = saved_seqs()
    trace.refresh_from_db()
    assert trace.status == Trace.Status.RUNNING, "the run ended before its worker was killed"

    # The session worker's reaper notices the missing heartbeats (4 s limit in tests).
    stack.wait_until(
        lambda: Trace.objects.get(pk=trace.id).is_finished,
        timeout=30,
        what="the reaper to end the abandoned trace",
    )

    trace.refresh_from_db()
    assert trace.status == Trace.Status.FAILED
    assert trace.error.startswith("worker lost")
    assert f":{worker.pid} " in trace.error  # the reason names the process that vanished
    after = saved_seqs()
    assert after == before, "steps were lost, or written after the worker died"
    assert after == list(range(1, len(after) + 1))
    assert trace.step_count == len(after)
    assert len(after) < 3 * turns + 2
