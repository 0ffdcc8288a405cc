"""Whatever an endpoint answers, the parser gives a reply of the declared types or a
ModelError; malformed tool calls become error steps the model reads, never a crash."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.llm import ModelError, backend_for
from agents.llm.base import ModelReply, ToolCallRequest, parse_openai_message
from agents.models import ModelEndpoint
from agents.runner import trace_run
from traces.models import Step
from traces.services import trace_create

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
# Bodies shaped like chat completions, with any value anywhere.
calls = st.lists(
    json_values
    | st.fixed_dictionaries(
        {
            "id": json_values,
            "function": json_values
            | st.fixed_dictionaries({"name": json_values, "arguments": json_values}),
        }
    ),
    max_size=3,
)
bodies = json_values | st.fixed_dictionaries(
    {
        "choices": st.lists(
            json_values
            | st.fixed_dictionaries(
                {
                    "message": json_values
                    | st.fixed_dictionaries(
                        {"content": json_values, "tool_calls": calls | json_values}
                    ),
                    "finish_reason": json_values,
                }
            ),
            max_size=2,
        ),
        "usage": json_values | st.fixed_dictionaries({"prompt_tokens": json_values}),
        "model": json_values,
    }
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies)
def test_the_parser_returns_a_well_typed_reply_or_a_model_error(body):
    try:
        reply = parse_openai_message(body)
    except ModelError:
        return
    assert isinstance(reply, ModelReply)
    assert isinstance(reply.content, str) and isinstance(reply.model, str)
    assert isinstance(reply.finish_reason, str)
    assert 0 <= reply.prompt_tokens < 2**31 and 0 <= reply.completion_tokens < 2**31
    for call in reply.tool_calls:
        assert isinstance(call, ToolCallRequest)
        assert isinstance(call.id, str) and 0 < len(call.id) <= 100
        assert isinstance(call.name, str) and isinstance(call.arguments, str)
        assert call.problem or call.name
    json.dumps(reply.as_message())


def reply_with(tool_calls=None, content="") -> dict:
    return {"choices": [{"message": {"content": content, "tool_calls": tool_calls}}]}


@pytest.mark.parametrize(
    ("call", "problem"),
    [
        ({"id": "a", "function": {"name": None, "arguments": "{}"}}, "function name is missing"),
        ({"id": "a", "function": {"name": "echo", "arguments": 5}}, "arguments are a int"),
        ({"id": "a", "function": {"name": "echo", "arguments": ["x"]}}, "arguments are a list"),
        ({"id": "x" * 10_000_000, "function": {"name": "echo"}}, "its id is not a string"),
        ({"id": 7, "function": {"name": "echo"}}, "its id is not a string"),
        ("echo", "is not an object"),
    ],
)
def test_a_malformed_tool_call_carries_its_problem(call, problem):
    [parsed] = parse_openai_message(reply_with([call])).tool_calls
    assert problem in parsed.problem
    assert len(parsed.id) <= 100


@pytest.mark.django_db
def test_an_answer_over_the_size_limit_is_a_model_error(openai_server, settings):
    settings.TOOLTRAIL_MODEL_REPLY_MAX_BYTES = 1000
    openai_server.answer_json(reply_with(content="x" * 2000))
    endpoint = ModelEndpoint(name="big", kind="openai", base_url=openai_server.base_url)
    with pytest.raises(ModelError, match="answered more than 1000 bytes"):
        backend_for(endpoint).complete([], [])


@pytest.mark.parametrize("content", [5, {"text": "hi"}, [1, 2]])
def test_content_that_is_not_text_is_a_model_error(content):
    with pytest.raises(ModelError, match="not text"):
        parse_openai_message(reply_with(content=content))


def test_content_parts_are_joined():
    body = reply_with(content=[{"type": "text", "text": "a"}, {"type": "text", "text": "b"}])
    assert parse_openai_message(body).content == "ab"


@pytest.mark.django_db(transaction=True)
def test_malformed_calls_become_error_steps_and_the_run_goes_on(
    scripted_agent, openai_server, settings
):
    """Through a real run against a real HTTP server."""
    settings.TOOLTRAIL_MODEL_REPLY_MAX_BYTES = 32 * 1024 * 1024
    openai_server.answer_json(
        reply_with(
            [
                {"id": "n", "function": {"name": None, "arguments": "{}"}},
                {"id": "x" * 10_000_000, "function": {"name": "echo", "arguments": "{}"}},
                {"id": "w", "function": {"name": "echo", "arguments": 3.5}},
            ]
        )
    )
    openai_server.answer_json(reply_with(content="I give up."))
    agent = scripted_agent([])
    agent.endpoint = ModelEndpoint.objects.create(
        name="fake-openai", kind="openai", base_url=openai_server.base_url, model="m"
    )
    agent.save()
    trace = trace_create(
        name="a", input="go", agent_slug=agent.slug, metadata={"agent_id": agent.id}
    )
    finished = trace_run(trace_id=trace.id)
    assert finished.status == "succeeded"
    errors = list(Step.objects.filter(trace=trace, kind="error").order_by("seq"))
    assert [s.name for s in errors] == ["invalid_tool_call"] * 3
    assert "function name is missing" in errors[0].error
    assert "its id is not a string" in errors[1].error
    assert "arguments are a float" in errors[2].error
    # The model was told about each, under ids it can repeat back.
    tool_messages = [
        m for m in openai_server.requests[1]["body"]["messages"] if m["role"] == "tool"
    ]
    assert len(tool_messages) == 3 and all(len(m["tool_call_id"]) <= 100 for m in tool_messages)
