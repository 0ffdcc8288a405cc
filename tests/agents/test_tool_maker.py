"""The tool maker on a real (scripted) model endpoint: the model writes a code tool, the
sandbox tests it, it is saved as a draft and a person activates it."""

from __future__ import annotations

import json

import pytest

from agents.models import ModelEndpoint
from agents.toolmaker import tool_make
from toolsapp.models import Tool

pytestmark = pytest.mark.django_db

SPEC = {
    "name": "reverse_words",
    "description": "Reverse the order of the words in a sentence.",
    "parameters": {
        "type": "object",
        "properties": {"sentence": {"type": "string"}},
        "required": ["sentence"],
    },
    "function": "reverse_words",
    "source": "def reverse_words(sentence):\n    return ' '.join(reversed(sentence.split()))\n",
}
EXAMPLES = [
    {"arguments": {"sentence": "a b c"}, "expected": "c b a"},
    {"arguments": {"sentence": "hello"}, "expected": "hello"},
]


def endpoint(*replies: str) -> ModelEndpoint:
    return ModelEndpoint.objects.create(
        name="maker",
        kind=ModelEndpoint.Kind.SCRIPTED,
        config={"script": [{"content": r} for r in replies]},
    )


def test_a_scripted_model_makes_a_draft_tool_that_passes_its_examples():
    wrong = {**SPEC, "source": "def reverse_words(sentence):\n    return sentence[::-1]\n"}
    made = tool_make(
        endpoint=endpoint(json.dumps(wrong), json.dumps(SPEC)),
        task="Reverse the words of a sentence",
        examples=EXAMPLES,
    )
    assert made.attempts == 2 and made.error == ""
    assert made.tool.status == Tool.Status.DRAFT
    assert made.tool.config["last_test"]["passed"] == 2


def test_the_tool_maker_page_saves_a_draft_and_opens_it(client, make_user):
    client.force_login(make_user("root", role="admin"))
    ep = endpoint(json.dumps(SPEC))
    page = client.post(
        "/tool-maker/",
        {
            "endpoint": str(ep.pk),
            "task": "Reverse the words of a sentence",
            "examples": json.dumps(EXAMPLES),
        },
        follow=True,
    )
    html = page.content.decode()
    assert "Saved as a draft: every example passed in the sandbox." in html
    assert "reverse_words" in html and "Draft" in html
    done = client.post("/tools/code/reverse_words/activate/", follow=True)
    assert "is active" in done.content.decode()


def test_the_tool_maker_page_refuses_bad_examples(client, make_user):
    client.force_login(make_user("root", role="admin"))
    ep = endpoint(json.dumps(SPEC))
    page = client.post(
        "/tool-maker/", {"endpoint": str(ep.pk), "task": "x", "examples": "[not json"}
    )
    assert page.status_code == 400
    assert "examples are not valid JSON" in page.content.decode()
    assert not Tool.objects.filter(kind=Tool.Kind.CODE).exists()


def test_a_model_that_runs_out_of_replies_is_a_clear_error(client, make_user):
    client.force_login(make_user("root", role="admin"))
    ep = endpoint()
    page = client.post(
        "/tool-maker/",
        {"endpoint": str(ep.pk), "task": "x", "examples": json.dumps(EXAMPLES)},
    )
    assert page.status_code == 400
    assert "the model failed" in page.content.decode()
