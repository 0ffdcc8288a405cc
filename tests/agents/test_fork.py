"""Fork from a step: edit a tool call and re-run the agent from there (in-process run
on a scripted model, as in test_function_calling)."""

from __future__ import annotations

import pytest

from agents.runner import trace_run
from agents.services import RunError, agent_run_fork, agent_run_start
from traces.models import Step
from traces.selectors import model_call_conversation

pytestmark = pytest.mark.django_db(transaction=True)

SCRIPT = [
    {
        "content": "Let me compute.",
        "tool_calls": [{"name": "calculator", "arguments": {"expression": "2 + 2"}}],
    },
    {"content": "The answer is in the tool result."},
]


def shape(trace) -> list[tuple]:
    return [
        (s.seq, s.kind, s.name, s.parent.seq if s.parent else None)
        for s in Step.objects.filter(trace=trace).select_related("parent").order_by("seq")
    ]


@pytest.fixture
def finished_run(scripted_agent):
    agent = scripted_agent(SCRIPT)
    trace = agent_run_start(agent=agent, input="What is 2 + 2?", enqueue=False)
    return trace_run(trace_id=trace.id)


def test_a_fork_copies_the_steps_before_the_call_and_reruns_with_the_edited_arguments(
    finished_run,
):
    source = finished_run
    assert source.status == "succeeded"

    fork = agent_run_fork(trace=source, seq=2, arguments={"expression": "6 * 7"}, enqueue=False)
    assert (fork.forked_from_id, fork.fork_seq, fork.step_count) == (source.id, 2, 1)
    done = trace_run(trace_id=fork.id)

    assert done.status == "succeeded"
    assert shape(done) == shape(source)
    steps = {s.seq: s for s in Step.objects.filter(trace=done)}
    assert steps[1].output == Step.objects.get(trace=source, seq=1).output  # copied
    assert steps[2].input == {"expression": "6 * 7"}
    assert steps[3].output == {"expression": "6 * 7", "result": 42}
    # The model's next turn read the edited call and its new result.
    conversation = model_call_conversation(step=steps[4])
    assert '"6 * 7"' in str(conversation)
    assert any(m["role"] == "tool" and "42" in m["content"] for m in conversation)
    assert (done.model_calls, done.tool_calls) == (2, 1)


def test_a_fork_refuses_arguments_that_break_the_schema_and_writes_nothing(finished_run):
    from traces.models import Trace

    before = Trace.objects.count()
    with pytest.raises(RunError, match="schema"):
        agent_run_fork(trace=finished_run, seq=2, arguments={"expression": 5})
    with pytest.raises(RunError, match="not a tool call"):
        agent_run_fork(trace=finished_run, seq=1, arguments={})
    assert Trace.objects.count() == before
