"""The websocket side of events with the real Daphne and Redis: events checked before
any socket sees them, bounded catch-up frames, and calls in progress served to a socket
that connects mid-call."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def token(make_user) -> str:
    from tooltrail.services import api_token_create

    _, raw = api_token_create(user=make_user("watcher", role="viewer"))
    return raw


def socket(stack, token, trace_id, *, after=0, as_json=True):
    query = f"?after={after}" + ("&format=json" if as_json else "")
    return connect(
        f"{stack.ws_url}/ws/traces/{trace_id}/{query}",
        origin=stack.base_url,
        additional_headers={"Authorization": f"Bearer {token}"},
        open_timeout=10,
        max_size=None,
    )


async def until_state(ws) -> list[str]:
    """Frames up to and including the trace's state (the end of the greeting)."""
    frames = []
    async with asyncio.timeout(15):
        while True:
            frames.append(await ws.recv())
            if frames[-1].startswith('{"type": "trace"') or 'id="trace-status"' in frames[-1]:
                return frames


def running_trace():
    from traces.services import trace_create, trace_start

    trace = trace_create(name="fan-out", input="x")
    trace_start(trace_id=trace.id)
    return trace


def test_forged_events_never_reach_a_page_and_event_data_is_escaped(stack, token):
    from traces.broadcast import group_send_now, trace_group
    from traces.models import Step
    from traces.services import step_record

    trace = running_trace()

    async def watch():
        async with socket(stack, token, trace.id, as_json=False) as ws:
            await until_state(ws)
            group = trace_group(trace.id)
            # Someone with access to Redis publishes HTML, an unknown type, a bad seq.
            await asyncio.to_thread(
                group_send_now,
                group,
                {"type": "step.created", "seq": 1, "html": "<script>evil()</script>"},
            )
            await asyncio.to_thread(
                group_send_now,
                group,
                {"type": "step", "trace": str(trace.id), "seq": "1", "step": {}},
            )
            await asyncio.to_thread(
                step_record,
                trace_id=trace.id,
                kind=Step.Kind.TOOL_CALL,
                name="<img src=x onerror=alert(1)>",
            )
            async with asyncio.timeout(10):
                return await ws.recv()

    frame = asyncio.run(watch())
    assert "evil()" not in frame
    assert 'id="step-1"' in frame
    assert "<img src=x" not in frame
    assert "&lt;img src=x onerror=alert(1)&gt;" in frame


def test_catch_up_comes_in_bounded_frames_then_the_state(stack, token):
    from traces.models import Step, Trace

    trace = running_trace()
    big = "x" * 100_000
    Step.objects.bulk_create(
        [
            Step(
                trace=trace,
                seq=n,
                kind="tool_result",
                name="t",
                output={"blob": big} if n <= 6 else {"n": n},
            )
            for n in range(1, 451)
        ]
    )
    Trace.objects.filter(pk=trace.pk).update(step_count=450)

    async def greet():
        async with socket(stack, token, trace.id) as ws:
            return await until_state(ws)

    frames = asyncio.run(greet())
    steps = [json.loads(f) for f in frames[:-1]]
    assert all(f["type"] == "steps" for f in steps)
    assert [s["seq"] for f in steps for s in f["steps"]] == list(range(1, 451))
    assert max(len(f) for f in frames) < 300 * 1024  # 256 KiB, give or take one step
    assert max(len(f["steps"]) for f in steps) <= 200
    assert json.loads(frames[-1])["trace"]["step_count"] == 450


def test_a_socket_that_connects_mid_call_sees_the_call_running(stack, token):
    from traces.services import call_ended, call_started

    trace = running_trace()
    call_id = call_started(trace_id=trace.id, kind="tool", name="sleep", parent_seq=None)

    async def greet():
        async with socket(stack, token, trace.id) as ws:
            return [json.loads(f) for f in await until_state(ws)]

    frames = asyncio.run(greet())
    assert [(f["type"], f.get("call", {}).get("name")) for f in frames] == [
        ("call.started", "sleep"),
        ("trace", None),
    ]
    call_ended(trace_id=trace.id, call_id=call_id)
    assert [f["type"] for f in asyncio.run(greet())] == ["trace"]


def test_a_step_that_ends_a_call_ends_it_in_the_same_frame(stack, token):
    """One broadcast for a call's step and its end: programs still hear call.ended (in the
    step's frame), pages lose the running row as the step's row arrives, and a socket
    that connects after sees neither the call nor a gap."""
    from traces.services import call_ended, call_started, step_record

    trace = running_trace()
    call_id = call_started(trace_id=trace.id, kind="tool", name="sleep", parent_seq=None)

    async def watch(as_json: bool) -> list[str]:
        async with socket(stack, token, trace.id, as_json=as_json) as ws:
            await until_state(ws)
            await asyncio.to_thread(call_ended, trace_id=trace.id, call_id=call_id, announce=False)
            await asyncio.to_thread(
                step_record, trace_id=trace.id, kind="tool_result", name="sleep", ended_call=call_id
            )
            async with asyncio.timeout(15):
                return [await ws.recv()]

    (frame,) = asyncio.run(watch(as_json=True))
    events = json.loads(frame)
    assert events["type"] == "events"
    assert [(e["type"], e.get("seq"), e.get("call")) for e in events["events"]] == [
        ("step", 1, None),
        ("call.ended", None, {"id": call_id}),
    ]

    call_id = call_started(trace_id=trace.id, kind="tool", name="sleep", parent_seq=None)
    (html,) = asyncio.run(watch(as_json=False))
    assert 'id="step-2"' in html
    assert f'<div id="call-{call_id}" hx-swap-oob="delete"></div>' in html

    async def greet():
        async with socket(stack, token, trace.id) as ws:
            return [json.loads(f) for f in await until_state(ws)]

    assert [f["type"] for f in asyncio.run(greet())] == ["steps", "trace"]
