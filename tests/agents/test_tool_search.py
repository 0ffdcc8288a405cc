"""An agent with a large toolset finds its tools with ``tool_search`` (scripted model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agents.runner import trace_run
from toolsapp.models import Tool, Toolset
from traces.models import Step, Trace
from traces.services import trace_create

pytestmark = pytest.mark.django_db(transaction=True)

SEAL = Path(__file__).parent.parent / "toolsapp" / "data" / "seal_tools"


@pytest.fixture
def large_toolset_agent(scripted_agent, settings):
    """``make(script)``: an agent whose toolset is the built-ins plus 40 Seal-Tools tools,
    above a threshold of 10."""
    settings.TOOLTRAIL_TOOL_SEARCH_THRESHOLD = 10
    settings.TOOLTRAIL_TOOL_SEARCH_TOP_K = 3

    def make(script: list[dict]):
        agent = scripted_agent(script)
        toolset = Toolset.objects.create(name="Everything", slug=f"everything-{agent.pk}")
        docs = [json.loads(line) for line in (SEAL / "corpus.jsonl").open()][:40]
        seal = [
            Tool.objects.get_or_create(
                name=doc["_id"],
                source="",
                defaults={
                    "description": doc["text"],
                    "config": {"callable": "toolsapp.builtin:echo"},
                },
            )[0]
            for doc in docs
        ]
        toolset.tools.add(*seal, *Toolset.objects.get(slug="builtin").tools.all())
        agent.toolset = toolset
        agent.save()
        return agent

    return make


def run(agent, text: str) -> tuple[Trace, list[Step]]:
    trace = trace_create(
        name=agent.name, input=text, agent_slug=agent.slug, metadata={"agent_id": agent.id}
    )
    finished = trace_run(trace_id=trace.id)
    return finished, list(Step.objects.filter(trace=trace).order_by("seq"))


def offered(steps: list[Step]) -> list[list[str]]:
    """The tool names offered on each model turn."""
    return [s.input["tools"] for s in steps if s.kind == Step.Kind.MODEL_CALL]


def test_the_agent_searches_and_calls_a_tool_it_was_not_first_offered(large_toolset_agent):
    agent = large_toolset_agent(
        [
            {
                "tool_calls": [
                    {"name": "tool_search", "arguments": {"query": "convert miles to km"}}
                ]
            },
            {
                "tool_calls": [
                    {
                        "name": "unit_convert",
                        "arguments": {"value": 3, "from_unit": "mi", "to_unit": "km"},
                    }
                ]
            },
            {"content": "3 miles is 4.83 km."},
        ]
    )
    trace, steps = run(agent, "Tell me the water quality of the lake, and how far 3 miles is.")

    assert trace.status == Trace.Status.SUCCEEDED, [s.error for s in steps]
    first, second, _ = offered(steps)
    assert first[0] == "tool_search" and len(first) == 1 + 3  # not the 45 tools
    assert "unit_convert" not in first
    assert "unit_convert" in second and set(first) < set(second)
    search_result = next(s for s in steps if s.kind == Step.Kind.TOOL_RESULT)
    assert search_result.name == "tool_search"
    assert "unit_convert" in [t["name"] for t in search_result.output["tools"]]
    convert = [s for s in steps if s.kind == Step.Kind.TOOL_RESULT][-1]
    assert convert.name == "unit_convert" and convert.output["result"] == pytest.approx(4.828032)


def test_a_tool_not_offered_yet_cannot_be_called(large_toolset_agent):
    agent = large_toolset_agent(
        [
            {"tool_calls": [{"name": "echo", "arguments": {"text": "hi"}}]},
            {"content": "I could not."},
        ]
    )
    trace, steps = run(agent, "What is the weather in Paris?")
    [error] = [s for s in steps if s.kind == Step.Kind.ERROR]
    assert error.name == "unknown_tool"
    assert "tool_search" in error.error


def test_bad_search_arguments_are_an_error_the_model_reads(large_toolset_agent):
    agent = large_toolset_agent(
        [
            {"tool_calls": [{"name": "tool_search", "arguments": {"query": "", "k": 99}}]},
            {"content": "Giving up."},
        ]
    )
    trace, steps = run(agent, "Find me a tool")
    [error] = [s for s in steps if s.kind == Step.Kind.ERROR]
    assert error.name == "invalid_arguments"
    assert trace.status == Trace.Status.SUCCEEDED


def test_a_small_toolset_is_offered_whole_without_search(scripted_agent):
    agent = scripted_agent([{"content": "Hello."}])
    _, steps = run(agent, "Hi")
    assert sorted(offered(steps)[0]) == ["calculator", "clock", "echo", "sleep", "unit_convert"]
