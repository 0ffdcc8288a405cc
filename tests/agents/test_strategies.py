"""Each strategy, run in-process on scripted (recorded) models, records how it reasoned
as steps the debugger shows: refinement rounds, the decision, search branches, roles."""

from __future__ import annotations

import pytest

from agents.models import Agent, ModelEndpoint
from agents.runner import trace_run
from agents.strategies import STRATEGIES, strategy_choices
from traces.models import Step, Trace
from traces.selectors import model_call_conversation
from traces.services import trace_create

pytestmark = pytest.mark.django_db(transaction=True)


def run(agent: Agent, text: str) -> tuple[Trace, list[Step]]:
    trace = trace_create(
        name=agent.name, input=text, agent_slug=agent.slug, metadata={"agent_id": agent.id}
    )
    finished = trace_run(trace_id=trace.id)
    return finished, list(Step.objects.filter(trace=trace).order_by("seq"))


def calc(expression: str) -> dict:
    return {"tool_calls": [{"name": "calculator", "arguments": {"expression": expression}}]}


def with_strategy(scripted_agent, strategy: str, script: list[dict], **config) -> Agent:
    agent = scripted_agent(script)
    agent.strategy = strategy
    agent.strategy_config = config
    agent.save()
    return agent


def test_every_registered_strategy_is_a_choice_on_the_agent():
    assert [key for key, _ in strategy_choices()] == list(STRATEGIES)
    assert dict(Agent._meta.get_field("strategy").choices)["dfsdt"] == "DFSDT tree search (ToolLLM)"


def test_self_refine_fixes_a_call_before_it_runs_and_stops_when_stable(scripted_agent):
    agent = with_strategy(
        scripted_agent,
        "self_refine",
        [
            {
                "tool_calls": [{"name": "calculator", "arguments": {"expr": "17 * 23"}}]
            },  # breaks the schema
            calc("17 * 23"),  # refine round 1: corrected
            calc("17 * 23"),  # refine round 2: unchanged, so refinement stops
            {"content": "17 × 23 = 391"},
        ],
        max_rounds=3,
    )
    trace, steps = run(agent, "what is 17 * 23")
    assert trace.status == Trace.Status.SUCCEEDED and trace.output == "17 × 23 = 391"
    first = steps[0]
    refines = [s for s in steps if s.kind == Step.Kind.MODEL_CALL and s.name == "refine"]
    assert [s.metadata["refine_round"] for s in refines] == [1, 2]
    assert all(s.parent_id == first.id for s in refines)
    (call,) = [s for s in steps if s.kind == Step.Kind.TOOL_CALL]
    assert call.input == {"expression": "17 * 23"}  # the refined call ran, not the first
    (result,) = [s for s in steps if s.kind == Step.Kind.TOOL_RESULT]
    assert result.output["result"] == 391
    assert not [s for s in steps if s.kind == Step.Kind.ERROR]
    # The main conversation still reads back whole, with the refined call in it.
    last_call = [s for s in steps if s.kind == Step.Kind.MODEL_CALL and s.name != "refine"][-1]
    conversation = model_call_conversation(step=last_call)
    assert conversation[1]["tool_calls"][0]["function"]["arguments"] == '{"expression": "17 * 23"}'


def test_decide_first_answers_directly_when_no_tool_is_needed(scripted_agent):
    agent = with_strategy(
        scripted_agent, "decide_first", [{"content": "no"}, {"content": "Hello to you too!"}]
    )
    trace, steps = run(agent, "say hello")
    assert trace.output == "Hello to you too!"
    assert [(s.kind, s.name) for s in steps] == [
        (Step.Kind.MODEL_CALL, "decide"),
        (Step.Kind.MODEL_CALL, "answer"),
        (Step.Kind.FINAL, "answer"),
    ]
    assert steps[0].input["tools"] == [] and steps[1].input["tools"] == []


def test_decide_first_uses_tools_when_they_are_needed(scripted_agent):
    agent = with_strategy(
        scripted_agent, "decide_first", [{"content": "yes"}, calc("2 + 2"), {"content": "4"}]
    )
    trace, steps = run(agent, "what is 2 + 2")
    assert trace.output == "4"
    assert [s.kind for s in steps if s.kind == Step.Kind.TOOL_RESULT] == [Step.Kind.TOOL_RESULT]


def test_dfsdt_backs_up_from_a_failed_branch_and_shows_the_tree(scripted_agent):
    agent = with_strategy(
        scripted_agent,
        "dfsdt",
        [
            {"tool_calls": [{"name": "weather_lookup", "arguments": {}}]},  # branch 0: no such tool
            calc("6 * 7"),  # branch 1: works
            {"content": "It is 42."},  # child of branch 1: the answer
        ],
        width=2,
    )
    trace, steps = run(agent, "what is 6 * 7")
    assert trace.status == Trace.Status.SUCCEEDED and trace.output == "It is 42."
    nodes = [s for s in steps if s.kind == Step.Kind.MODEL_CALL]
    assert [n.metadata["branch"] for n in nodes] == ["0", "1", "1.0"]
    assert nodes[0].parent_id is None and nodes[1].parent_id is None
    assert nodes[2].parent_id == nodes[1].id  # the answer hangs under the branch it continues
    assert "Earlier attempts at this step failed" in nodes[1].input["messages"][-1]["content"]
    assert any(s.kind == Step.Kind.ERROR and s.parent.parent_id == nodes[0].id for s in steps)


def test_dfsdt_fails_clearly_when_every_branch_fails(scripted_agent):
    bad = {"tool_calls": [{"name": "nope", "arguments": {}}]}
    agent = with_strategy(scripted_agent, "dfsdt", [bad, bad], width=2)
    trace, _ = run(agent, "anything")
    assert trace.status == Trace.Status.FAILED
    assert trace.error == "DFSDT: every branch of the search failed"


def test_planner_caller_summarizer_gives_each_role_its_own_endpoint(scripted_agent):
    def endpoint(name: str, script: list[dict]) -> ModelEndpoint:
        return ModelEndpoint.objects.create(
            name=name, kind=ModelEndpoint.Kind.SCRIPTED, config={"script": script}
        )

    endpoint("planner-ep", [{"content": "NEXT: multiply 17 by 23"}, {"content": "FINISH"}])
    endpoint("caller-ep", [calc("17 * 23")])
    endpoint("summarizer-ep", [{"content": "The product is 391."}])
    agent = with_strategy(
        scripted_agent,
        "planner_caller_summarizer",
        [],
        planner="planner-ep",
        caller="caller-ep",
        summarizer="summarizer-ep",
    )
    trace, steps = run(agent, "17 * 23?")
    assert trace.status == Trace.Status.SUCCEEDED and trace.output == "The product is 391."
    roles = [s.name for s in steps if s.kind == Step.Kind.MODEL_CALL]
    assert roles == ["planner", "caller", "planner", "summarizer"]
    caller = next(s for s in steps if s.name == "caller")
    assert "multiply 17 by 23" in caller.input["messages"][-1]["content"]
    assert next(s for s in steps if s.kind == Step.Kind.TOOL_RESULT).output["result"] == 391


def test_a_role_naming_a_missing_endpoint_fails_the_run_clearly(scripted_agent):
    agent = with_strategy(scripted_agent, "planner_caller_summarizer", [], planner="ghost")
    trace, _ = run(agent, "hi")
    assert trace.status == Trace.Status.FAILED
    assert "endpoints that do not exist: ghost" in trace.error
