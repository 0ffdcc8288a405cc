"""Live traces with the real parts: a Celery worker runs the agent, Daphne serves the
API and the websocket, Redis carries the broadcasts (the session ``stack``)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable

import httpx
import pytest
import websockets
from websockets.asyncio.client import connect

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

FINISHED = {"succeeded", "failed", "cancelled"}
STEP_ID = re.compile(r'<li [^>]*id="step-(\d+)"')


def slow_script(turns: int, *, delay_ms: int = 150) -> list[dict]:
    """``turns`` model replies with one calculator call each, then an answer: three
    steps a turn (model call, tool call, tool result) plus two at the end."""
    script = [
        {
            "content": f"turn {n}",
            "tool_calls": [{"name": "calculator", "arguments": {"expression": f"{n} * 2"}}],
            "delay_ms": delay_ms,
        }
        for n in range(1, turns + 1)
    ]
    script.append({"content": "done", "delay_ms": delay_ms})
    return script


def steps_for(turns: int) -> int:
    return 3 * turns + 2


@pytest.fixture
def token(make_user) -> str:
    from tooltrail.services import api_token_create

    _, raw = api_token_create(user=make_user("runner", role="annotator"))
    return raw


@pytest.fixture
def api(stack, token):
    with httpx.Client(
        base_url=stack.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=10
    ) as client:
        yield client


def start_run(api: httpx.Client, agent, text: str = "count for me") -> str:
    response = api.post("/api/runs", json={"agent": agent.slug, "input": text})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def trace_status(api: httpx.Client, trace_id: str) -> dict:
    response = api.get(f"/api/traces/{trace_id}")
    assert response.status_code == 200, response.text
    return response.json()


def wait_finished(stack, api: httpx.Client, trace_id: str, *, timeout: float = 30.0) -> dict:
    return stack.wait_until(
        lambda: (t := trace_status(api, trace_id))["status"] in FINISHED and t,
        timeout=timeout,
        what=f"trace {trace_id} to finish",
    )


def wait_steps(stack, api: httpx.Client, trace_id: str, at_least: int) -> int:
    return stack.wait_until(
        lambda: (n := trace_status(api, trace_id)["step_count"]) >= at_least and n,
        what=f"{at_least} steps in trace {trace_id}",
    )


# --- websocket client ---------------------------------------------------------------


def ws_url(stack, trace_id: str, *, after: int, as_json: bool) -> str:
    url = f"{stack.ws_url}/ws/traces/{trace_id}/?after={after}"
    return url + "&format=json" if as_json else url


def seqs_in(message: str, *, as_json: bool) -> list[int]:
    """The step numbers one websocket message carries, in the order it carries them."""
    if not as_json:
        return [int(n) for n in STEP_ID.findall(message)]
    data = json.loads(message)
    if data["type"] == "steps":
        return [s["seq"] for s in data["steps"]]
    if data["type"] == "step":
        return [data["step"]["seq"]]
    return []


async def receive_seqs(
    stack,
    token: str,
    trace_id: str,
    *,
    after: int,
    as_json: bool,
    until: Callable[[list[int]], bool],
    timeout: float = 30.0,
) -> list[int]:
    """Connect with cursor ``after`` and collect step numbers until ``until(seqs)``."""
    seen: list[int] = []
    async with connect(
        ws_url(stack, trace_id, after=after, as_json=as_json),
        origin=stack.base_url,
        additional_headers={"Authorization": f"Bearer {token}"},
        open_timeout=10,
    ) as ws:
        async with asyncio.timeout(timeout):
            while not until(seen):
                seen.extend(seqs_in(await ws.recv(), as_json=as_json))
    return seen


# --- tests --------------------------------------------------------------------------


def test_a_run_started_through_the_api_is_run_by_the_worker(stack, api, scripted_agent):
    agent = scripted_agent(slow_script(2, delay_ms=10))

    trace_id = start_run(api, agent)
    trace = wait_finished(stack, api, trace_id)

    assert trace["status"] == "succeeded", trace
    assert trace["output"] == "done"
    body = api.get(f"/api/traces/{trace_id}/steps", params={"after": 0}).json()
    assert [s["seq"] for s in body["steps"]] == list(range(1, steps_for(2) + 1))
    assert [s["kind"] for s in body["steps"][:3]] == ["model_call", "tool_call", "tool_result"]
    assert body["steps"][-1]["kind"] == "final"
    assert body["cursor"] == steps_for(2)
    # The cursor endpoint serves only what comes after N.
    tail = api.get(f"/api/traces/{trace_id}/steps", params={"after": 5}).json()
    assert [s["seq"] for s in tail["steps"]] == list(range(6, steps_for(2) + 1))


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "html"])
def test_a_socket_opened_mid_run_gets_every_later_step_once_in_order(
    stack, api, token, scripted_agent, as_json
):
    turns = 8
    total = steps_for(turns)
    agent = scripted_agent(slow_script(turns), max_steps=turns + 1)
    trace_id = start_run(api, agent)
    after = wait_steps(stack, api, trace_id, 4)
    assert after < total, "the run ended before the socket connected; slow the script down"

    seen = asyncio.run(
        receive_seqs(
            stack,
            token,
            trace_id,
            after=after,
            as_json=as_json,
            until=lambda seqs: bool(seqs) and seqs[-1] >= total,
        )
    )

    assert seen == list(range(after + 1, total + 1))
    assert wait_finished(stack, api, trace_id)["status"] == "succeeded"


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "html"])
def test_a_socket_that_reconnects_with_its_cursor_misses_and_repeats_nothing(
    stack, api, token, scripted_agent, as_json
):
    turns = 10
    total = steps_for(turns)
    agent = scripted_agent(slow_script(turns), max_steps=turns + 1)
    trace_id = start_run(api, agent)
    wait_steps(stack, api, trace_id, 1)

    first = asyncio.run(
        receive_seqs(
            stack, token, trace_id, after=0, as_json=as_json, until=lambda seqs: len(seqs) >= 6
        )
    )
    assert trace_status(api, trace_id)["status"] == "running", "disconnected too late"
    # While nobody listens the run goes on; the reconnect must fill that gap.
    wait_steps(stack, api, trace_id, first[-1] + 3)
    second = asyncio.run(
        receive_seqs(
            stack,
            token,
            trace_id,
            after=first[-1],
            as_json=as_json,
            until=lambda seqs: bool(seqs) and seqs[-1] >= total,
        )
    )

    assert first + second == list(range(1, total + 1))


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer tt_not-a-real-token"}],
    ids=["no-credentials", "bad-token"],
)
def test_a_socket_without_valid_credentials_is_refused(stack, api, scripted_agent, headers):
    agent = scripted_agent(slow_script(1, delay_ms=0))
    trace_id = start_run(api, agent)
    wait_finished(stack, api, trace_id)

    async def try_to_listen() -> None:
        async with connect(
            ws_url(stack, trace_id, after=0, as_json=True),
            origin=stack.base_url,
            additional_headers=headers,
        ) as ws:
            await asyncio.wait_for(ws.recv(), timeout=10)

    with pytest.raises((websockets.InvalidStatus, websockets.ConnectionClosed)):
        asyncio.run(try_to_listen())


def test_cancel_through_the_api_stops_the_run_within_one_step(stack, api, scripted_agent):
    from django.utils import timezone

    from traces.models import Step

    turns = 30
    agent = scripted_agent(slow_script(turns, delay_ms=200), max_steps=turns + 1)
    trace_id = start_run(api, agent)
    wait_steps(stack, api, trace_id, 4)

    asked_at = timezone.now()
    response = api.post(f"/api/traces/{trace_id}/cancel")
    assert response.status_code == 202, response.text
    answered_at = timezone.now()  # the cancel is committed by now
    trace = wait_finished(stack, api, trace_id)

    assert trace["status"] == "cancelled"
    model_calls = Step.objects.filter(trace_id=trace_id, kind=Step.Kind.MODEL_CALL)
    # The model call in flight while the cancel was on its way may still be recorded;
    # none may start once it is committed.
    assert not model_calls.filter(started_at__gt=answered_at).exists()
    assert model_calls.filter(started_at__gt=asked_at).count() <= 1
    assert model_calls.count() < turns
    steps = list(
        Step.objects.filter(trace_id=trace_id).order_by("seq").values_list("seq", flat=True)
    )
    assert steps == list(range(1, trace["step_count"] + 1))
    # A second cancel of a finished run is refused, not silently accepted.
    assert api.post(f"/api/traces/{trace_id}/cancel").status_code == 409


def test_healthz_lists_the_live_worker_to_staff(stack, make_user):
    from tooltrail.services import api_token_create

    response = stack.wait_until(
        lambda: (r := httpx.get(f"{stack.base_url}/healthz", timeout=10)).status_code == 200 and r,
        what="/healthz to answer 200",
    )
    assert response.json() == {"ok": True}  # anonymous: up or down, nothing more
    _, raw = api_token_create(user=make_user("root", role="admin"))
    response = httpx.get(
        f"{stack.base_url}/healthz", headers={"Authorization": f"Bearer {raw}"}, timeout=10
    )
    report = response.json()
    assert report["ok"] is True
    assert report["workers"]["count"] >= 1
    assert "agents" in report["workers"]["queues"]
    assert any(host.startswith("test-worker-") for host in report["workers"]["hosts"])


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "html"])
def test_a_socket_that_reconnects_after_the_run_ended_learns_how_it_ended(
    stack, api, token, scripted_agent, as_json
):
    # A browser cut off while the run finished missed the "succeeded" broadcast; its
    # reconnect must not leave the badge at "running".
    agent = scripted_agent(slow_script(1, delay_ms=0))
    trace_id = start_run(api, agent)
    wait_finished(stack, api, trace_id)

    async def reconnect() -> str:
        async with connect(
            ws_url(stack, trace_id, after=steps_for(1), as_json=as_json),
            origin=stack.base_url,
            additional_headers={"Authorization": f"Bearer {token}"},
        ) as ws:
            return await asyncio.wait_for(ws.recv(), timeout=10)

    message = asyncio.run(reconnect())

    if as_json:
        assert json.loads(message)["trace"]["status"] == "succeeded"
    else:
        assert 'id="trace-status"' in message
        assert 'data-status="succeeded"' in message


def test_a_step_whose_live_message_was_lost_still_comes_before_the_final_status(
    stack, api, token, scripted_agent
):
    # Redis pub/sub delivers at most once (a subscriber that reconnects misses what was
    # sent meanwhile). If the lost message was the run's last step, nothing later would
    # reveal the gap but the trace's own status change, which carries its step count.
    from traces.broadcast import group_send_now, trace_group
    from traces.models import Step, Trace
    from traces.services import trace_payload

    agent = scripted_agent(slow_script(1, delay_ms=0))
    trace_id = start_run(api, agent)
    wait_finished(stack, api, trace_id)
    trace = Trace.objects.get(pk=trace_id)

    async def listen() -> list[str]:
        async with connect(
            ws_url(stack, trace_id, after=trace.step_count, as_json=True),
            origin=stack.base_url,
            additional_headers={"Authorization": f"Bearer {token}"},
        ) as ws:
            messages = [await asyncio.wait_for(ws.recv(), timeout=10)]  # the state now
            # A step saved with its broadcast lost, then the status change that follows it.
            await asyncio.to_thread(
                Step.objects.create, trace=trace, seq=trace.step_count + 1, kind="final"
            )
            await asyncio.to_thread(
                Trace.objects.filter(pk=trace.pk).update, step_count=trace.step_count + 1
            )
            trace.step_count += 1
            await asyncio.to_thread(
                group_send_now,
                trace_group(trace.id),
                {"type": "trace.updated", "trace": trace_payload(trace), "html": ""},
            )
            while json.loads(messages[-1])["type"] != "trace" or len(messages) < 2:
                messages.append(await asyncio.wait_for(ws.recv(), timeout=10))
            return messages

    messages = [json.loads(m) for m in asyncio.run(listen())]

    assert [m["type"] for m in messages] == ["trace", "steps", "trace"]
    assert [s["seq"] for s in messages[1]["steps"]] == [trace.step_count]


def test_the_trace_list_socket_announces_a_new_run_and_each_status_change(
    stack, api, token, scripted_agent
):
    agent = scripted_agent(slow_script(1, delay_ms=50))
    headers = {"Authorization": f"Bearer {token}"}

    def list_socket(query: str):
        return connect(
            f"{stack.ws_url}/ws/traces/{query}",
            origin=stack.base_url,
            additional_headers=headers,
            open_timeout=10,
        )

    async def watch() -> tuple[str, list[str], list[str], str]:
        statuses: list[str] = []
        filtered: list[str] = []
        async with (
            list_socket("?format=json") as ws,
            list_socket("?format=json&status=failed") as failed_only,
            list_socket("") as html_ws,
        ):
            trace_id = await asyncio.to_thread(start_run, api, agent)
            async with asyncio.timeout(30):
                while not statuses or statuses[-1] not in FINISHED:
                    data = json.loads(await ws.recv())
                    if data["trace"]["id"] == trace_id:
                        statuses.append(data["trace"]["status"])
                while not filtered or filtered[-1] not in FINISHED:
                    data = json.loads(await failed_only.recv())
                    if data["trace"]["id"] == trace_id:
                        filtered.append(data["trace"]["status"])
                first_html = await html_ws.recv()
        return trace_id, statuses, filtered, first_html

    trace_id, statuses, filtered, first_html = asyncio.run(watch())

    assert statuses == ["queued", "running", "succeeded"]
    # A page showing only failed runs is not handed the new (queued) row, but still
    # hears of the changes of rows it might show.
    assert filtered == ["running", "succeeded"]
    # The page's first message inserts the new row at the top of the table.
    assert 'hx-swap-oob="afterbegin:#trace-rows"' in first_html
    assert f'id="trace-row-{trace_id}"' in first_html
