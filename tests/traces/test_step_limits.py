"""A step row keeps at most a capped size of its input, output and error; the rest is
kept aside, shown as "truncated: N bytes" and loaded on demand; the model reads the
capped tool result."""

from __future__ import annotations

import json

import pytest

from agents.runner import trace_run
from toolsapp.models import Tool, Toolset
from traces.models import Step, StepBlob
from traces.services import step_record, trace_create, trace_start

pytestmark = pytest.mark.django_db


@pytest.fixture
def small_cap(settings):
    settings.TOOLTRAIL_STEP_FIELD_MAX_BYTES = 1024
    return 1024


def running():
    trace = trace_create(name="big", input="go")
    return trace_start(trace_id=trace.id, worker="t:1")


def test_a_big_output_is_capped_in_the_row_and_kept_whole_aside(small_cap, client, make_user):
    trace = running()
    big = {"text": "é" * 5000}
    step = step_record(trace_id=trace.id, kind="tool_result", name="echo", output=big)
    step.refresh_from_db()
    assert step.output["truncated"].startswith("truncated: ")
    assert len(step.output["preview"].encode()) <= small_cap
    whole = len(json.dumps(big, ensure_ascii=False).encode())
    assert step.metadata["truncated"] == {"output": whole - len(step.output["preview"].encode())}
    blob = StepBlob.objects.get(step=step, field="output")
    assert json.loads(blob.text) == big and blob.size == whole

    client.force_login(make_user("vic", "viewer"))
    page = client.get(f"/traces/{trace.id}/?step={step.seq}")
    assert page.status_code == 200
    assert b"Output truncated: " in page.content
    assert len(page.content) < 20 * small_cap
    full = client.get(f"/api/traces/{trace.id}/steps/{step.seq}/full/output")
    assert full.status_code == 200 and full.json() == big
    untouched = client.get(f"/api/traces/{trace.id}/steps/{step.seq}/full/input")
    assert untouched.status_code == 404 and "not truncated" in untouched.json()["error"]
    assert client.get(f"/api/traces/{trace.id}/steps/{step.seq}/full/nope").status_code == 404


def test_small_values_and_long_errors(small_cap):
    trace = running()
    step = step_record(trace_id=trace.id, kind="error", input={"a": 1}, error="x" * 5000)
    step.refresh_from_db()
    assert step.input == {"a": 1}
    assert step.error.endswith(f"truncated: {5000 - small_cap} bytes")
    assert StepBlob.objects.get(step=step, field="error").text == "x" * 5000


def test_values_json_cannot_hold_are_stored_as_text():
    trace = running()
    step = step_record(trace_id=trace.id, kind="tool_result", output={"x": float("nan")})
    step.refresh_from_db()
    assert step.output == "{'x': nan}"


def many_zeds(**arguments):
    """A real python tool with a big answer."""
    return {"text": "z" * 10_000}


@pytest.mark.django_db(transaction=True)
def test_the_model_reads_the_capped_tool_result(small_cap, scripted_agent):
    agent = scripted_agent(
        [{"tool_calls": [{"name": "many_zeds", "arguments": {}}]}, {"content": "done"}]
    )
    tool = Tool.objects.create(
        name="many_zeds",
        kind=Tool.Kind.PYTHON,
        config={"callable": f"{__name__}:many_zeds"},
        parameters={"type": "object", "properties": {}},
    )
    Toolset.objects.get(slug="builtin").tools.add(tool)
    trace = trace_create(
        name="a", input="go", agent_slug=agent.slug, metadata={"agent_id": agent.id}
    )
    assert trace_run(trace_id=trace.id).status == "succeeded"
    second_call = Step.objects.filter(trace=trace, kind="model_call").order_by("seq")[1]
    # That call's own input holds the capped result and more: it was capped in turn.
    sent_input = json.loads(StepBlob.objects.get(step=second_call, field="input").text)
    tool_message = sent_input["messages"][-1]
    assert tool_message["role"] == "tool"
    sent = json.loads(tool_message["content"])
    assert sent["truncated"].startswith("truncated: ") and sent["preview"].startswith(
        '{"text": "zzz'
    )


def test_nul_characters_are_stored_as_replacement_characters():
    """PostgreSQL text and jsonb cannot hold NUL; a tool may well answer one."""
    trace = running()
    step = step_record(
        trace_id=trace.id, kind="error", name="a\x00", output={"t": "a\x00b"}, error="e\x00"
    )
    step.refresh_from_db()
    assert (step.name, step.output, step.error) == ("a\ufffd", {"t": "a\ufffdb"}, "e\ufffd")
