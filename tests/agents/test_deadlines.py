"""Deadlines and cancel: a model call has an overall deadline, a run has a total
deadline, and cancel interrupts a model call in progress instead of waiting for it."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from agents.llm import ModelCancelled, ModelError, backend_for
from agents.models import ModelEndpoint
from agents.runner import trace_run
from traces.models import Step, Trace
from traces.services import trace_cancel, trace_create, trace_start, traces_reap_stale

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
def trickling_server() -> Iterator[str]:
    """A real HTTP server that answers 200 and then one byte a second, for ever."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
            )
            while not stop.wait(1.0):
                try:
                    conn.sendall(b" ")
                except OSError:
                    return

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/v1"
    finally:
        stop.set()
        server.close()


def trickling_endpoint(url: str, **config) -> ModelEndpoint:
    return ModelEndpoint(name="trickle", kind="openai", base_url=url, model="m", config=config)


def test_a_server_that_trickles_ends_in_a_model_error_at_the_deadline(trickling_server):
    backend = backend_for(trickling_endpoint(trickling_server, timeout=30, deadline=2))
    with pytest.raises(ModelError, match="no complete answer within the 2 s deadline"):
        backend.complete(MESSAGES, [])


def test_cancel_interrupts_a_model_call_in_progress(trickling_server):
    backend = backend_for(trickling_endpoint(trickling_server, timeout=30, deadline=120))
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    with pytest.raises(ModelCancelled, match="was cancelled"):
        backend.complete(MESSAGES, [], cancel=cancel)


def queued(agent) -> Trace:
    return trace_create(
        name=agent.name, input="go", agent_slug=agent.slug, metadata={"agent_id": agent.id}
    )


@pytest.mark.django_db(transaction=True)
def test_cancel_stops_a_run_during_a_slow_model_call(scripted_agent):
    agent = scripted_agent([{"content": "too late", "delay_ms": 120_000}])
    trace = queued(agent)

    def press_cancel() -> None:
        try:
            while not Trace.objects.filter(pk=trace.id, status="running").exists():
                time.sleep(0.05)
            trace_cancel(trace_id=trace.id)
        finally:
            connection.close()

    presser = threading.Thread(target=press_cancel)
    presser.start()
    finished = trace_run(trace_id=trace.id)
    presser.join()
    assert (finished.status, finished.error) == ("cancelled", "cancelled by a user")
    assert not Step.objects.filter(trace=trace).exists()  # the slow reply never came


@pytest.mark.django_db(transaction=True)
def test_a_run_past_its_deadline_ends_failed_with_the_reason(scripted_agent):
    agent = scripted_agent([{"content": "too late", "delay_ms": 120_000}])
    agent.deadline_seconds = 1
    agent.save()
    finished = trace_run(trace_id=queued(agent).id)
    assert (finished.status, finished.error) == ("failed", "the run passed its deadline of 1 s")
    assert finished.deadline_at is not None


@pytest.mark.django_db
def test_a_run_stuck_past_its_deadline_is_reaped_though_its_heartbeat_goes_on():
    trace = trace_create(name="stuck", input="go")
    trace_start(trace_id=trace.id, worker="host:9", deadline_seconds=60)
    Trace.objects.filter(pk=trace.id).update(
        deadline_at=timezone.now() - timedelta(seconds=120), heartbeat_at=timezone.now()
    )
    [reaped] = traces_reap_stale(stale_after=30)
    assert reaped.status == "failed"
    assert reaped.error.startswith("run stuck: still running on host:9 30 s after its deadline")


@pytest.mark.django_db
def test_an_agents_deadline_is_capped_by_the_setting(scripted_agent, settings):
    settings.TOOLTRAIL_RUN_DEADLINE_MAX_SECONDS = 100
    settings.TOOLTRAIL_RUN_DEADLINE_SECONDS = 50
    agent = scripted_agent([])
    assert agent.run_deadline == 50
    agent.deadline_seconds = 10_000
    assert agent.run_deadline == 100


@pytest.mark.django_db
def test_a_queued_run_whose_task_was_lost_is_sent_again_then_ends_failed(scripted_agent):
    from agents.services import runs_requeue_lost

    trace = queued(scripted_agent([]))
    assert runs_requeue_lost(after=60) == []  # just queued: not lost
    long_ago = timezone.now() - timedelta(seconds=600)
    Trace.objects.filter(pk=trace.id).update(created_at=long_ago)
    for tries in (1, 2, 3):
        assert runs_requeue_lost(after=60) == []
        trace.refresh_from_db()
        assert (trace.status, trace.metadata["requeued"]) == ("queued", tries)
        assert runs_requeue_lost(after=60) == []  # sent again just now: waits anew
        Trace.objects.filter(pk=trace.id).update(heartbeat_at=long_ago)
    [ended] = runs_requeue_lost(after=60)
    assert ended.status == "failed"
    assert ended.error.startswith("no worker took the run: still queued after 3 tries of 60 s")


def spinning_agent(scripted_agent, marker, *, deadline_seconds=None):
    from toolsapp.models import Tool

    spinner = Tool.objects.create(
        name="spinner",
        kind=Tool.Kind.PYTHON,
        config={"callable": "tests.agents.runaway_tools:spin"},
        parameters={"type": "object", "properties": {"marker": {"type": "string"}}},
        timeout_seconds=60,
    )
    agent = scripted_agent(
        [
            {"tool_calls": [{"name": "spinner", "arguments": {"marker": str(marker)}}]},
            {"content": "never"},
        ]
    )
    agent.toolset.tools.add(spinner)
    agent.deadline_seconds = deadline_seconds
    agent.save()
    return agent


@pytest.mark.django_db(transaction=True)
def test_cancel_stops_a_tool_call_in_progress(scripted_agent, tmp_path, settings):
    settings.TOOLTRAIL_TOOL_TIMEOUT_SECONDS = 60
    marker = tmp_path / "spin.pid"
    trace = queued(spinning_agent(scripted_agent, marker))

    def press_cancel() -> None:
        try:
            while not marker.exists():  # the tool is spinning
                time.sleep(0.05)
            trace_cancel(trace_id=trace.id)
        finally:
            connection.close()

    presser = threading.Thread(target=press_cancel)
    presser.start()
    finished = trace_run(trace_id=trace.id)
    presser.join()
    assert finished.status == "cancelled"
    [stopped] = Step.objects.filter(trace=trace, kind="error")
    assert stopped.name == "tool_cancelled"  # stopped, not left to its 60 s timeout


@pytest.mark.django_db(transaction=True)
def test_a_run_deadline_stops_a_tool_call_in_progress(scripted_agent, tmp_path, settings):
    settings.TOOLTRAIL_TOOL_TIMEOUT_SECONDS = 60
    agent = spinning_agent(scripted_agent, tmp_path / "spin.pid", deadline_seconds=2)
    finished = trace_run(trace_id=queued(agent).id)
    assert (finished.status, finished.error) == ("failed", "the run passed its deadline of 2 s")
    assert Step.objects.filter(trace=finished, name="tool_cancelled").exists()
