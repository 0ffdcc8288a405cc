"""The Tooltrail Python SDK (sdk/tooltrail_sdk) recording an agent into the running stack."""

from __future__ import annotations

import httpx
import pytest
from tooltrail_sdk import Tooltrail

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def token(make_user) -> str:
    from tooltrail.services import api_token_create

    return api_token_create(user=make_user("sdk-user", role="annotator"))[1]


@pytest.fixture
def api(stack, token):
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=stack.base_url, headers=headers, timeout=10) as client:
        yield client


def steps_of(api, otel_trace_id: str) -> tuple[dict, list[dict]]:
    (trace,) = api.get("/api/traces", params={"otel_trace_id": otel_trace_id}).json()["traces"]
    return trace, api.get(f"/api/traces/{trace['id']}/steps").json()["steps"]


def test_an_agent_recorded_with_the_sdk_appears_as_a_finished_trace(stack, api, token):
    tt = Tooltrail(stack.base_url, token=token, service="calc-agent")

    @tt.tool
    def add(a: int, b: int = 0) -> int:
        return a + b

    @tt.tool(name="divide")
    def div(a: int, b: int) -> float:
        return a / b

    with tt.trace("calc", input="1+2, then 1/0") as run:
        with tt.model_call(
            "tiny", provider="local", messages=[{"role": "user", "content": "1+2, then 1/0"}]
        ) as call:
            call.output(
                "",
                tool_calls=[{"id": "c1", "name": "add", "arguments": '{"a": 1, "b": 2}'}],
            )
            call.usage(input_tokens=11, output_tokens=4)
        assert add(1, b=2) == 3
        with pytest.raises(ZeroDivisionError):
            div(1, 0)
        run.output("3, and 1/0 is undefined")
    otel_trace_id = run.trace_id
    assert tt.flush(10)
    tt.close()
    assert (tt.sent_spans, tt.failed_spans) == (4, 0)

    trace, steps = steps_of(api, otel_trace_id)
    assert (trace["source"], trace["status"], trace["name"]) == ("sdk", "succeeded", "calc")
    assert trace["input"] == "1+2, then 1/0"
    assert trace["output"] == "3, and 1/0 is undefined"
    assert (trace["prompt_tokens"], trace["completion_tokens"]) == (11, 4)
    root = next(s for s in steps if s["parent_seq"] is None)
    assert root["kind"] == "agent"
    children = sorted(
        (s["kind"], s["name"], s["input"], s["output"], s["error"])
        for s in steps
        if s["parent_seq"] == root["seq"]
    )
    assert children == [
        (
            "model_call",
            "tiny",
            {"messages": [{"role": "user", "content": "1+2, then 1/0"}]},
            {
                "content": "",
                "tool_calls": [{"id": "c1", "name": "add", "arguments": '{"a": 1, "b": 2}'}],
                "messages": [
                    {
                        "role": "assistant",
                        "content": "",
                        "tool_calls": [
                            {"id": "c1", "name": "add", "arguments": '{"a": 1, "b": 2}'}
                        ],
                    }
                ],
            },
            "",
        ),
        ("tool_call", "add", {"a": 1, "b": 2}, 3, ""),
        ("tool_call", "divide", {"a": 1, "b": 0}, None, "ZeroDivisionError: division by zero"),
    ]


def test_a_tool_called_outside_a_trace_is_a_trace_of_its_own_and_a_bad_token_is_counted(
    stack, api, token
):
    with Tooltrail(stack.base_url, token=token) as tt:

        @tt.tool
        def echo(text: str) -> str:
            return text

        with tt.span("outer") as outer:
            pass
        assert echo("hi") == "hi"
    _, steps = steps_of(api, outer.trace_id)
    assert [s["kind"] for s in steps] == ["span"]

    with Tooltrail(stack.base_url, token="tt_wrong") as refused, refused.trace("lost"):
        pass
    assert (refused.sent_spans, refused.failed_spans) == (0, 1)
