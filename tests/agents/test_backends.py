"""Model backends. The OpenAI-compatible one talks to a real HTTP server started here,
answering with chat-completion bodies recorded from the OpenAI API."""

from __future__ import annotations

import json

import pytest

from agents.llm import ModelError, backend_for
from agents.models import Agent, ModelEndpoint
from agents.runner import trace_run
from toolsapp.models import Toolset
from tooltrail import launcher
from traces.models import Step, Trace
from traces.services import trace_create

TOOL_CALLS_BODY = {
    "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
    "object": "chat.completion",
    "created": 1741569952,
    "model": "gpt-4.1-2025-04-14",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_12345xyz",
                        "type": "function",
                        "function": {
                            "name": "calculator",
                            "arguments": '{"expression":"(12 + 30) * 2"}',
                        },
                    },
                    {
                        "id": "call_67890abc",
                        "type": "function",
                        "function": {
                            "name": "unit_convert",
                            "arguments": '{"value":5,"from_unit":"km","to_unit":"mi"}',
                        },
                    },
                ],
                "refusal": None,
                "annotations": [],
            },
            "logprobs": None,
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {"prompt_tokens": 82, "completion_tokens": 47, "total_tokens": 129},
    "service_tier": "default",
    "system_fingerprint": "fp_fc9f1d7035",
}

ANSWER_BODY = {
    "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeH",
    "object": "chat.completion",
    "created": 1741569953,
    "model": "gpt-4.1-2025-04-14",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "84, and 5 km is 3.107 mi."},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 160, "completion_tokens": 14, "total_tokens": 174},
}


def endpoint(base_url: str = "", **fields) -> ModelEndpoint:
    return ModelEndpoint(
        name=fields.pop("name", "openai-test"),
        kind=ModelEndpoint.Kind.OPENAI,
        base_url=base_url,
        model=fields.pop("model", "gpt-4.1"),
        **fields,
    )


MESSAGES = [{"role": "user", "content": "What is (12 + 30) * 2, and 5 km in miles?"}]
TOOLS = [
    {
        "type": "function",
        "function": {"name": "calculator", "description": "", "parameters": {"type": "object"}},
    }
]


def test_it_reads_parallel_tool_calls_and_usage(openai_server, monkeypatch):
    monkeypatch.setenv("TT_TEST_OPENAI_KEY", "sk-test-123")
    openai_server.answer_json(TOOL_CALLS_BODY)
    backend = backend_for(
        endpoint(
            openai_server.base_url + "/",
            api_key_env="TT_TEST_OPENAI_KEY",
            config={"temperature": 0.2, "max_tokens": 64},
        )
    )

    reply = backend.complete(MESSAGES, TOOLS)

    assert [(c.id, c.name, json.loads(c.arguments)) for c in reply.tool_calls] == [
        ("call_12345xyz", "calculator", {"expression": "(12 + 30) * 2"}),
        ("call_67890abc", "unit_convert", {"value": 5, "from_unit": "km", "to_unit": "mi"}),
    ]
    assert reply.content == ""
    assert (reply.prompt_tokens, reply.completion_tokens) == (82, 47)
    assert (reply.model, reply.finish_reason) == ("gpt-4.1-2025-04-14", "tool_calls")
    [request] = openai_server.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["authorization"] == "Bearer sk-test-123"
    assert request["body"] == {
        "model": "gpt-4.1",
        "messages": MESSAGES,
        "tools": TOOLS,
        "temperature": 0.2,
        "max_tokens": 64,
    }


def test_it_reads_a_plain_answer_and_sends_no_key_when_none_is_configured(openai_server):
    openai_server.answer_json(ANSWER_BODY)
    reply = backend_for(endpoint(openai_server.base_url)).complete(MESSAGES, [])
    assert (reply.content, reply.tool_calls, reply.finish_reason) == (
        "84, and 5 km is 3.107 mi.",
        [],
        "stop",
    )
    [request] = openai_server.requests
    assert "authorization" not in request["headers"]
    assert "tools" not in request["body"]


def test_it_accepts_arguments_sent_as_an_object(openai_server):
    body = json.loads(json.dumps(TOOL_CALLS_BODY))
    body["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] = {"expression": "1+1"}
    del body["choices"][0]["message"]["tool_calls"][0]["id"]
    openai_server.answer_json(body)
    reply = backend_for(endpoint(openai_server.base_url)).complete(MESSAGES, TOOLS)
    assert json.loads(reply.tool_calls[0].arguments) == {"expression": "1+1"}
    assert reply.tool_calls[0].id == "call_0"


def test_it_names_an_api_key_variable_that_is_not_set(monkeypatch):
    monkeypatch.delenv("TT_TEST_MISSING_KEY", raising=False)
    with pytest.raises(
        ModelError, match="environment variable TT_TEST_MISSING_KEY \\(the API key\\) is not set"
    ):
        backend_for(endpoint("http://127.0.0.1:9/v1", api_key_env="TT_TEST_MISSING_KEY"))


def test_it_reports_an_http_error_with_the_servers_words(openai_server):
    openai_server.answer_json(
        {"error": {"message": "The server had an error while processing your request."}},
        status=500,
    )
    with pytest.raises(ModelError) as info:
        backend_for(endpoint(openai_server.base_url)).complete(MESSAGES, TOOLS)
    message = str(info.value)
    assert f"{openai_server.base_url}/chat/completions answered HTTP 500" in message
    assert "The server had an error while processing your request." in message


def test_it_reports_an_answer_that_is_not_json(openai_server):
    openai_server.answer_raw(b"<html><body>502 Bad Gateway</body></html>")
    with pytest.raises(ModelError, match="answered something that is not JSON: <html><body>502"):
        backend_for(endpoint(openai_server.base_url)).complete(MESSAGES, TOOLS)


def test_it_reports_json_without_a_message(openai_server):
    openai_server.answer_json({"object": "list", "data": []})
    with pytest.raises(ModelError, match=r"has no choices\[0\]\.message"):
        backend_for(endpoint(openai_server.base_url)).complete(MESSAGES, TOOLS)


def test_it_reports_a_server_that_cannot_be_reached():
    url = f"http://127.0.0.1:{launcher.free_port()}/v1"
    with pytest.raises(ModelError, match=f"could not reach {url}/chat/completions"):
        backend_for(endpoint(url, config={"timeout": 5})).complete(MESSAGES, TOOLS)


def test_it_needs_a_base_url():
    with pytest.raises(ModelError, match="endpoint 'openai-test' has no base URL"):
        backend_for(endpoint(""))


def test_an_unknown_endpoint_kind_is_refused():
    with pytest.raises(ModelError, match="unknown endpoint kind 'carrier-pigeon'"):
        backend_for(ModelEndpoint(name="x", kind="carrier-pigeon"))


def test_a_scripted_endpoint_needs_a_script():
    with pytest.raises(ModelError, match="'broken' needs config.script, a list of replies"):
        backend_for(ModelEndpoint(name="broken", kind="scripted", config={"script": "hi"}))


def test_a_script_replays_broken_json_exactly_as_written():
    script = [{"tool_calls": [{"name": "echo", "arguments": '{"text": '}, {"name": "clock"}]}]
    backend = backend_for(ModelEndpoint(name="s", kind="scripted", config={"script": script}))
    reply = backend.complete(MESSAGES, [])
    assert [(c.id, c.name, c.arguments) for c in reply.tool_calls] == [
        ("call_1_0", "echo", '{"text": '),
        ("call_1_1", "clock", "{}"),
    ]
    assert reply.finish_reason == "tool_calls"
    with pytest.raises(ModelError, match="the script has only 1 replies"):
        backend.complete(MESSAGES, [])


# --- whole runs against the HTTP endpoint ---------------------------------------------------


def openai_agent(base_url: str, **endpoint_fields) -> Agent:
    from toolsapp.services import builtin_tools_sync

    builtin_tools_sync()
    return Agent.objects.create(
        name="OpenAI agent",
        slug="openai-agent",
        endpoint=ModelEndpoint.objects.create(
            name="fake-openai", kind="openai", base_url=base_url, model="gpt-4.1", **endpoint_fields
        ),
        toolset=Toolset.objects.get(slug="builtin"),
    )


def run(agent: Agent) -> tuple[Trace, list[Step]]:
    trace = trace_create(
        name=agent.name, input="Compute it", agent_slug=agent.slug, metadata={"agent_id": agent.id}
    )
    finished = trace_run(trace_id=trace.id)
    return finished, list(trace.steps.order_by("seq"))


@pytest.mark.django_db(transaction=True)
def test_a_run_against_an_openai_endpoint_sends_results_back_with_their_call_ids(openai_server):
    openai_server.answer_json(TOOL_CALLS_BODY)
    openai_server.answer_json(ANSWER_BODY)
    trace, steps = run(openai_agent(openai_server.base_url))

    assert trace.status == Trace.Status.SUCCEEDED
    assert trace.output == "84, and 5 km is 3.107 mi."
    assert (trace.prompt_tokens, trace.completion_tokens) == (242, 61)
    assert [s.kind for s in steps] == [
        "model_call",
        "tool_call",
        "tool_result",
        "tool_call",
        "tool_result",
        "model_call",
        "final",
    ]
    assert steps[2].output["result"] == 84
    second = openai_server.requests[1]["body"]["messages"]
    assert second[1]["tool_calls"][0]["id"] == "call_12345xyz"
    assert [(m["tool_call_id"], json.loads(m["content"])["result"]) for m in second[2:]] == [
        ("call_12345xyz", 84),
        ("call_67890abc", pytest.approx(3.1068559612)),
    ]


@pytest.mark.django_db(transaction=True)
def test_a_run_whose_api_key_is_missing_fails_and_says_which_variable(monkeypatch):
    monkeypatch.delenv("TT_TEST_MISSING_KEY", raising=False)
    trace, steps = run(openai_agent("http://127.0.0.1:9/v1", api_key_env="TT_TEST_MISSING_KEY"))
    assert trace.status == Trace.Status.FAILED
    assert trace.error == "environment variable TT_TEST_MISSING_KEY (the API key) is not set"
    assert [(s.kind, s.name) for s in steps] == [("error", "model_error")]


@pytest.mark.django_db(transaction=True)
def test_a_run_whose_endpoint_fails_ends_failed_with_the_http_error(openai_server):
    openai_server.answer_raw(b"upstream timeout", status=500, content_type="text/plain")
    trace, steps = run(openai_agent(openai_server.base_url))
    assert trace.status == Trace.Status.FAILED
    assert trace.error.startswith("model call failed: ")
    assert "answered HTTP 500: upstream timeout" in trace.error
    assert steps[-1].kind == "error"
