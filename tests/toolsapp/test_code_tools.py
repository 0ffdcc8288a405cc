"""Code tools: saved as drafts, activated only when their stored tests pass in the sandbox,
and written by a model through the tool maker."""

from __future__ import annotations

import json

import pytest

from toolsapp.codetools import (
    CodeToolError,
    code_tool_activate,
    code_tool_make,
    code_tool_save,
)
from toolsapp.executors import ToolExecutionError
from toolsapp.models import Tool
from toolsapp.services import tool_execute

pytestmark = pytest.mark.django_db

SCHEMA = {
    "type": "object",
    "properties": {"text": {"type": "string"}},
    "required": ["text"],
}
GOOD = "def count_vowels(text):\n    return sum(c in 'aeiou' for c in text.lower())\n"
WRONG = "def count_vowels(text):\n    return len(text)\n"
TESTS = [
    {"arguments": {"text": "Banana"}, "expected": 3},
    {"arguments": {"text": "xyz"}, "expected": 0},
]


def save(source: str = GOOD, tests=TESTS, **fields) -> Tool:
    return code_tool_save(
        name=fields.get("name", "count_vowels"),
        description="Count the vowels in a text.",
        parameters=fields.get("parameters", SCHEMA),
        source=source,
        function="count_vowels",
        tests=tests,
    )


def test_a_new_code_tool_is_a_draft_that_cannot_be_called():
    tool = save()
    assert tool.status == Tool.Status.DRAFT
    with pytest.raises(ToolExecutionError, match="is draft"):
        tool_execute(tool=tool, arguments={"text": "a"})


def test_it_becomes_active_when_its_tests_pass_and_then_runs_in_the_sandbox():
    tool = save()
    results = code_tool_activate(tool=tool)
    assert [r.passed for r in results] == [True, True]
    assert tool.status == Tool.Status.ACTIVE
    assert tool.config["last_test"]["passed"] == 2
    assert tool_execute(tool=tool, arguments={"text": "Tooltrail"}) == 4


def test_failing_tests_keep_it_a_draft_and_say_which_case_failed():
    tool = save(WRONG)
    with pytest.raises(
        CodeToolError, match=r'2 of 2 test cases failed.*"Banana".*got 6, expected 3'
    ):
        code_tool_activate(tool=tool)
    tool.refresh_from_db()
    assert tool.status == Tool.Status.DRAFT
    assert tool.config["last_test"]["passed"] == 0


def test_editing_an_active_tool_puts_it_back_to_draft():
    code_tool_activate(tool=save())
    assert save(WRONG).status == Tool.Status.DRAFT


def test_a_tool_without_tests_cannot_be_activated():
    with pytest.raises(CodeToolError, match="at least one test case"):
        code_tool_activate(tool=save(tests=[]))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"source": "def count_vowels(:\n"}, "does not parse"),
        ({"source": "x = 1\n"}, "no top-level function named 'count_vowels'"),
        ({"name": "has space"}, "must match"),
        ({"parameters": {"type": "nonsense"}}, "not a valid JSON Schema"),
        ({"tests": [{"arguments": {}, "expected": 1}]}, "test case 0: .*'text' is a required"),
        ({"tests": [{"arguments": {"text": "a"}}]}, "no 'expected' value"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_saved(fields, message):
    source = fields.pop("source", GOOD)
    tests = fields.pop("tests", TESTS)
    with pytest.raises(CodeToolError, match=message):
        save(source, tests, **fields)
    assert not Tool.objects.filter(kind=Tool.Kind.CODE).exists()


def reply(source: str) -> str:
    spec = {
        "name": "count_vowels",
        "description": "Count vowels.",
        "parameters": SCHEMA,
        "function": "count_vowels",
        "source": source,
    }
    return f"Here it is:\n```json\n{json.dumps(spec)}\n```"


def test_the_tool_maker_feeds_failures_back_and_saves_a_draft_that_passes():
    prompts = []
    replies = iter(["no json here", reply(WRONG), reply(GOOD)])

    def complete(prompt: str) -> str:
        prompts.append(prompt)
        return next(replies)

    made = code_tool_make(
        task="Count the vowels in a text", examples=TESTS, complete=complete, attempts=3
    )
    assert made.attempts == 3
    assert made.error == ""
    assert made.tool.status == Tool.Status.DRAFT
    assert made.tool.config["source"] == GOOD
    assert "Count the vowels in a text" in prompts[0] and '{"text": "Banana"} -> 3' in prompts[0]
    assert "holds no JSON object" in prompts[1]
    assert "got 6, expected 3" in prompts[2]
    code_tool_activate(tool=made.tool)
    assert made.tool.status == Tool.Status.ACTIVE


def test_the_tool_maker_keeps_a_failing_tool_as_a_draft_and_says_so():
    made = code_tool_make(
        task="Count vowels", examples=TESTS, complete=lambda prompt: reply(WRONG), attempts=1
    )
    assert made.error == "2 of 2 examples failed"
    assert made.tool.status == Tool.Status.DRAFT
