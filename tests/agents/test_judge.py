"""Judge suggestions: a scripted model endpoint pre-labels a queue."""

from __future__ import annotations

import json

import pytest

from agents.judge import queue_suggest
from agents.models import ModelEndpoint
from traces.annotation_models import Annotation, Suggestion
from traces.annotation_selectors import queue_agreement
from traces.annotation_services import annotation_save, queue_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema_trace(db):
    from traces.demo import RUNS, demo_run_record

    return demo_run_record(input=RUNS[1]["input"], turns=RUNS[1]["turns"])


def reply(**answer) -> dict:
    return {"content": "My verdict: " + json.dumps(answer)}


def test_a_judge_suggests_per_item_apart_from_human_labels(schema_trace, make_user):
    ModelEndpoint.objects.create(
        name="judge",
        kind=ModelEndpoint.Kind.SCRIPTED,
        config={
            "script": [
                reply(
                    verdict="bad",
                    category="wrong-arguments",
                    corrected_call={"name": "clock", "arguments": {"timezone": "Europe/Paris"}},
                    rationale="tz is not a parameter",
                ),
                {"content": "I cannot decide."},  # no JSON: this item gets no suggestion
            ]
        },
    )
    queue = queue_create(
        name="judged",
        filter={"tool": "clock"},
        step_kinds="tool_calls",
        judge_endpoint="judge",
        judge_rubric="Be strict about schemas.",
    )

    assert queue_suggest(queue_id=queue.id) == {"stored": 1, "failed": 1}

    suggestion = Suggestion.objects.get()
    assert suggestion.step.seq == 2 and suggestion.verdict == "bad"
    assert suggestion.category.slug == "wrong-arguments"
    assert suggestion.corrected_call == {"name": "clock", "arguments": {"timezone": "Europe/Paris"}}
    assert not Annotation.objects.exists()  # never a human label

    ana = make_user("ana")
    from django.test import Client

    client = Client()
    client.force_login(ana)
    page = client.get(f"/queues/{queue.id}/annotate/").content.decode()
    assert (
        'data-testid="suggestion"' in page
        and "from judge" in page
        and "<kbd>a</kbd> accept" in page
    )

    annotation_save(user=ana, trace_id=schema_trace.id, step_seq=2, verdict="bad")
    judge = queue_agreement(queue=queue)["judge"]
    assert judge["n"] == 1 and judge["agreement"] == 1.0


def test_a_judge_answer_that_breaks_the_schema_keeps_only_the_verdict(schema_trace):
    ModelEndpoint.objects.create(
        name="sloppy",
        kind=ModelEndpoint.Kind.SCRIPTED,
        config={
            "script": [
                reply(
                    verdict="bad",
                    category="nonsense",
                    corrected_call={"name": "clock", "arguments": {"tz": 1}},
                )
            ]
        },
    )
    queue = queue_create(
        name="q", filter={"tool": "clock"}, step_kinds="tool_calls", judge_endpoint="sloppy"
    )
    queue.items.filter(position=2).delete()
    queue_suggest(queue_id=queue.id)
    suggestion = Suggestion.objects.get()
    assert (suggestion.verdict, suggestion.category, suggestion.corrected_call) == (
        "bad",
        None,
        None,
    )
