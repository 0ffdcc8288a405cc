"""The function-calling loop, run in-process on a scripted (recorded) model.

The runner closes stale connections and runs a heartbeat thread with its own
connection, as it does in a worker, so these tests commit for real.
"""

from __future__ import annotations

import json

import pytest
from django.db import connection

from agents.runner import trace_run
from toolsapp.models import Tool, Toolset
from traces.models import Step, Trace
from traces.services import trace_cancel, trace_create, trace_finish

pytestmark = pytest.mark.django_db(transaction=True)


def cancel_running_traces(**arguments):
    """A real python tool: someone presses Cancel while it runs."""
    try:
        for trace_id in Trace.objects.filter(status=Trace.Status.RUNNING).values_list(
            "id", flat=True
        ):
            trace_cancel(trace_id=trace_id)
        return {"cancelled": True}
    finally:
        connection.close()  # this ran in the executor's thread, on its own connection


def fail_running_traces(**arguments):
    """A real python tool: the reaper declares the run lost while it is still going."""
    try:
        for trace_id in Trace.objects.filter(status=Trace.Status.RUNNING).values_list(
            "id", flat=True
        ):
            trace_finish(trace_id=trace_id, status=Trace.Status.FAILED, error="worker lost")
        return {"reaped": True}
    finally:
        connection.close()


def start(agent, text: str = "Please help") -> Trace:
    return trace_create(
        name=agent.name, input=text, agent_slug=agent.slug, metadata={"agent_id": agent.id}
    )


def run(agent, text: str = "Please help") -> tuple[Trace, list[Step]]:
    trace = start(agent, text)
    finished = trace_run(trace_id=trace.id)
    assert finished is not None
    return finished, list(Step.objects.filter(trace=trace).order_by("seq"))


def shape(steps: list[Step]) -> list[tuple]:
    """(seq, kind, name, parent seq) of each step: the tree a user sees."""
    return [(s.seq, s.kind, s.name, s.parent.seq if s.parent else None) for s in steps]


def error_steps(steps: list[Step]) -> list[Step]:
    return [s for s in steps if s.kind == Step.Kind.ERROR]


def tool_messages(model_step: Step) -> list[dict]:
    return [m for m in model_step.input["messages"] if m["role"] == "tool"]


def answer(text: str = "Done.") -> dict:
    return {"content": text}


def test_a_successful_run_records_every_step_as_a_tree(scripted_agent):
    agent = scripted_agent(
        [
            {
                "content": "Both at once.",
                "tool_calls": [
                    {"name": "calculator", "arguments": {"expression": "6 * 7"}},
                    {
                        "name": "unit_convert",
                        "arguments": {"value": 5, "from_unit": "km", "to_unit": "m"},
                    },
                ],
                "prompt_tokens": 100,
                "completion_tokens": 20,
            },
            {"content": "42, and 5 km is 5000 m.", "prompt_tokens": 150, "completion_tokens": 9},
        ]
    )
    trace, steps = run(agent, "What is 6*7 and 5 km in m?")

    assert trace.status == Trace.Status.SUCCEEDED
    assert trace.output == "42, and 5 km is 5000 m."
    assert trace.error == ""
    assert shape(steps) == [
        (1, "model_call", "scripted", None),
        (2, "tool_call", "calculator", 1),
        (3, "tool_result", "calculator", 2),
        (4, "tool_call", "unit_convert", 1),
        (5, "tool_result", "unit_convert", 4),
        (6, "model_call", "scripted", None),
        (7, "final", "answer", 6),
    ]
    assert steps[1].input == {"expression": "6 * 7"}
    assert steps[2].output == {"expression": "6 * 7", "result": 42}
    assert steps[4].output["result"] == 5000
    assert steps[1].tool_call_id == steps[2].tool_call_id != steps[3].tool_call_id
    assert steps[1].metadata["schema"]["required"] == ["expression"]
    assert steps[6].output == {"content": "42, and 5 km is 5000 m."}
    assert all(s.status == Step.Status.OK for s in steps)
    # The second model call saw both results, each under its call's id.
    second_call_tools = tool_messages(steps[5])
    assert [m["tool_call_id"] for m in second_call_tools] == [
        steps[1].tool_call_id,
        steps[3].tool_call_id,
    ]
    assert json.loads(second_call_tools[0]["content"])["result"] == 42
    assert steps[0].input["messages"] == [{"role": "user", "content": "What is 6*7 and 5 km in m?"}]


def test_the_trace_totals_the_tokens_of_its_model_calls(scripted_agent):
    agent = scripted_agent(
        [
            {
                "tool_calls": [{"name": "echo", "arguments": {"text": "hi"}}],
                "prompt_tokens": 11,
                "completion_tokens": 3,
            },
            {"content": "hi", "prompt_tokens": 17, "completion_tokens": 4},
        ]
    )
    trace, steps = run(agent)
    assert (trace.prompt_tokens, trace.completion_tokens) == (28, 7)
    assert trace.total_tokens == 35
    assert [s.prompt_tokens for s in steps if s.kind == "model_call"] == [11, 17]


def test_step_numbers_are_unique_and_without_gaps(scripted_agent):
    agent = scripted_agent(
        [
            {"tool_calls": [{"name": "echo", "arguments": {"text": str(i)}} for i in range(3)]},
            {"tool_calls": [{"name": "nope", "arguments": {}}]},
            answer(),
        ]
    )
    trace, steps = run(agent)
    assert [s.seq for s in steps] == list(range(1, len(steps) + 1))
    assert trace.step_count == len(steps) == 12


def test_the_system_prompt_opens_the_conversation(scripted_agent):
    agent = scripted_agent([answer("Hello")])
    agent.system_prompt = "Be brief."
    agent.save()
    _, steps = run(agent, "Hi")
    assert steps[0].input["messages"][:2] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
    ]
    assert steps[0].input["tools"] == ["calculator", "clock", "echo", "sleep", "unit_convert"]


def test_invalid_json_arguments_become_an_error_the_model_reads_next_turn(scripted_agent):
    agent = scripted_agent(
        [
            {"tool_calls": [{"name": "calculator", "arguments": '{"expression": "2+2"'}]},
            {"tool_calls": [{"name": "calculator", "arguments": {"expression": "2+2"}}]},
            answer("4"),
        ]
    )
    trace, steps = run(agent)

    assert trace.status == Trace.Status.SUCCEEDED
    assert trace.output == "4"
    assert shape(steps)[:3] == [
        (1, "model_call", "scripted", None),
        (2, "tool_call", "calculator", 1),
        (3, "error", "invalid_arguments", 2),
    ]
    # The step keeps exactly what the model wrote.
    assert steps[1].input == '{"expression": "2+2"'
    assert steps[2].status == Step.Status.ERROR
    assert "arguments are not valid JSON" in steps[2].error
    # The model is told, and the run carries on.
    fed_back = tool_messages(steps[3])
    assert fed_back[0]["tool_call_id"] == steps[1].tool_call_id
    assert "arguments are not valid JSON" in json.loads(fed_back[0]["content"])["error"]
    assert [s.kind for s in steps[3:]] == [
        "model_call",
        "tool_call",
        "tool_result",
        "model_call",
        "final",
    ]


def test_a_call_to_an_unknown_tool_lists_the_tools_there_are(scripted_agent):
    agent = scripted_agent(
        [{"tool_calls": [{"name": "weather", "arguments": {"city": "Oslo"}}]}, answer()]
    )
    trace, steps = run(agent)

    assert trace.status == Trace.Status.SUCCEEDED
    [error] = error_steps(steps)
    assert error.name == "unknown_tool"
    assert error.parent.kind == "tool_call"
    assert error.parent.name == "weather"
    assert error.error == (
        "there is no tool named 'weather'; available tools: calculator, clock, echo, sleep, unit_convert"
    )
    assert "there is no tool named 'weather'" in tool_messages(steps[-2])[0]["content"]


def test_arguments_that_break_the_schema_are_refused_and_explained(scripted_agent):
    agent = scripted_agent(
        [
            {"tool_calls": [{"name": "clock", "arguments": {"tz": 5}}]},
            {"tool_calls": [{"name": "clock", "arguments": {"timezone": "Europe/Paris"}}]},
            answer(),
        ]
    )
    trace, steps = run(agent)

    assert trace.status == Trace.Status.SUCCEEDED
    [error] = error_steps(steps)
    assert error.name == "invalid_arguments"
    assert error.input == {"tz": 5}
    assert "arguments break the tool's schema" in error.error
    assert "'tz' was unexpected" in error.error
    assert "'tz' was unexpected" in tool_messages(steps[3])[0]["content"]
    # The debugger shows the schema the arguments were checked against, as it was then.
    clock = Tool.objects.get(name="clock")
    assert error.metadata["schema"] == clock.parameters
    assert error.parent.metadata["schema"] == clock.parameters
    results = [s for s in steps if s.kind == "tool_result"]
    assert [r.output["timezone"] for r in results] == ["Europe/Paris"]


def test_a_tool_that_raises_becomes_an_error_step_and_the_run_goes_on(scripted_agent):
    agent = scripted_agent(
        [{"tool_calls": [{"name": "calculator", "arguments": {"expression": "1/0"}}]}, answer()]
    )
    trace, steps = run(agent)

    assert trace.status == Trace.Status.SUCCEEDED
    [error] = error_steps(steps)
    assert error.name == "tool_error"
    assert error.error == "calculator failed: ZeroDivisionError: division by zero"
    assert error.parent == steps[1]
    assert "ZeroDivisionError" in tool_messages(steps[3])[0]["content"]


def test_a_tool_that_overruns_its_time_limit_is_reported(scripted_agent, settings):
    settings.TOOLTRAIL_TOOL_TIMEOUT_SECONDS = 0.2
    agent = scripted_agent(
        [{"tool_calls": [{"name": "sleep", "arguments": {"seconds": 3}}]}, answer("Too slow.")]
    )
    trace, steps = run(agent)

    assert trace.status == Trace.Status.SUCCEEDED
    [error] = error_steps(steps)
    assert error.name == "tool_error"
    assert error.error == "sleep failed: the tool did not answer within 0.2 s"
    assert not [s for s in steps if s.kind == "tool_result"]
    assert "did not answer within 0.2 s" in tool_messages(steps[3])[0]["content"]


def test_a_run_without_an_answer_within_max_steps_fails_with_the_reason(scripted_agent):
    echo = {"tool_calls": [{"name": "echo", "arguments": {"text": "again"}}]}
    agent = scripted_agent([echo, echo, echo, answer()], max_steps=2)
    trace, steps = run(agent)

    assert trace.status == Trace.Status.FAILED
    assert trace.error == "no final answer within 2 model turns"
    assert [s.kind for s in steps].count("model_call") == 2
    assert not [s for s in steps if s.kind == "final"]


def test_a_script_that_runs_out_fails_the_run_with_the_model_error(scripted_agent):
    agent = scripted_agent([{"tool_calls": [{"name": "echo", "arguments": {"text": "x"}}]}])
    trace, steps = run(agent)

    assert trace.status == Trace.Status.FAILED
    assert trace.error == (
        "model call failed: the script has only 1 replies; the run asked for more"
    )
    assert steps[-1].kind == "error"
    assert steps[-1].name == "model_error"
    assert steps[-1].error == "the script has only 1 replies; the run asked for more"
    assert [s.kind for s in steps] == ["model_call", "tool_call", "tool_result", "error"]


def test_a_cancel_requested_during_a_run_stops_it_before_the_next_step(scripted_agent):
    tool = Tool.objects.create(
        name="press_cancel",
        kind=Tool.Kind.PYTHON,
        config={"callable": f"{__name__}:cancel_running_traces"},
        parameters={"type": "object", "properties": {}},
    )
    Toolset.objects.get(slug="builtin").tools.add(tool)
    agent = scripted_agent(
        [
            {
                "tool_calls": [
                    {"name": "press_cancel", "arguments": {}},
                    {"name": "echo", "arguments": {"text": "never runs"}},
                ]
            },
            answer("never said"),
        ]
    )
    trace, steps = run(agent)

    assert trace.status == Trace.Status.CANCELLED
    assert trace.error == "cancelled by a user"
    assert trace.output == ""
    assert shape(steps) == [
        (1, "model_call", "scripted", None),
        (2, "tool_call", "press_cancel", 1),
        (3, "tool_result", "press_cancel", 2),
    ]


def test_a_trace_cancelled_while_queued_never_runs(scripted_agent):
    agent = scripted_agent([answer()])
    trace = start(agent)
    trace_cancel(trace_id=trace.id)

    assert trace_run(trace_id=trace.id) is None
    trace.refresh_from_db()
    assert trace.status == Trace.Status.CANCELLED
    assert trace.error == "cancelled before it started"
    assert trace.step_count == 0


def test_a_trace_that_already_ran_is_not_run_again(scripted_agent):
    agent = scripted_agent([answer("once")])
    trace, steps = run(agent)
    assert trace_run(trace_id=trace.id) is None
    assert Step.objects.filter(trace=trace).count() == len(steps) == 2


def test_a_run_whose_agent_was_deleted_fails_clearly(scripted_agent):
    agent = scripted_agent([answer()])
    trace = start(agent)
    agent.delete()
    finished = trace_run(trace_id=trace.id)
    assert finished.status == Trace.Status.FAILED
    assert finished.error == "the trace's agent no longer exists"


def test_each_model_call_stores_only_new_messages_and_the_whole_conversation_comes_back(
    scripted_agent,
):
    from traces.selectors import model_call_conversation

    turns = [
        {"tool_calls": [{"name": "calculator", "arguments": {"expression": f"{n} + 1"}}]}
        for n in range(4)
    ]
    agent = scripted_agent([*turns, answer("five")])
    agent.system_prompt = "Be brief."
    agent.save()
    trace, steps = run(agent, "count up")

    assert trace.status == Trace.Status.SUCCEEDED
    calls = [s for s in steps if s.kind == Step.Kind.MODEL_CALL]
    # What each call stores stays the same size however long the run gets: the
    # previous reply and its tool result, never the whole history again.
    assert [len(c.input["messages"]) for c in calls] == [2, 2, 2, 2, 2]
    assert [c.input["earlier_messages"] for c in calls] == [0, 2, 4, 6, 8]
    whole = model_call_conversation(step=calls[-1])
    assert [m["role"] for m in whole] == ["system", "user"] + ["assistant", "tool"] * 4
    assert whole[1] == {"role": "user", "content": "count up"}
    assert [json.loads(m["content"])["result"] for m in whole if m["role"] == "tool"] == [
        1,
        2,
        3,
        4,
    ]
    assert model_call_conversation(step=calls[0]) == calls[0].input["messages"]


def test_a_run_whose_trace_was_ended_elsewhere_writes_nothing_more(scripted_agent):
    Tool.objects.create(
        name="reaper",
        description="ends the running trace",
        parameters={"type": "object"},
        config={"callable": f"{__name__}:fail_running_traces"},
    )
    agent = scripted_agent(
        [
            {"tool_calls": [{"name": "reaper", "arguments": {}}]},
            {"tool_calls": [{"name": "calculator", "arguments": {"expression": "1+1"}}]},
            answer("too late"),
        ]
    )
    agent.toolset.tools.add(Tool.objects.get(name="reaper"))

    trace, steps = run(agent)

    assert (trace.status, trace.error, trace.output) == ("failed", "worker lost", "")
    # The call that ran is recorded up to the moment the trace closed; nothing after.
    assert [s.kind for s in steps] == ["model_call", "tool_call"]
