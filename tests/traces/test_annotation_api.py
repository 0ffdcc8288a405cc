"""The annotation JSON API: queues, next item, labels, agreement; roles."""

from __future__ import annotations

import json

import pytest

from tooltrail.services import api_token_create
from traces.annotation_models import Annotation
from traces.annotation_services import queue_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def token_for(make_user):
    def make(username: str, role: str = "annotator") -> tuple:
        user = make_user(username, role)
        return user, {"HTTP_AUTHORIZATION": f"Bearer {api_token_create(user=user)[1]}"}

    return make


def post_label(client, headers, body):
    return client.post(
        "/api/annotations", data=json.dumps(body), content_type="application/json", **headers
    )


def test_an_annotator_lists_queues_takes_the_next_item_and_labels_it(
    client, token_for, schema_trace
):
    ana, headers = token_for("ana")
    queue = queue_create(
        name="Clock calls", filter={"tool": "clock"}, step_kinds="tool_calls", annotators=[ana]
    )

    listed = client.get("/api/queues", **headers).json()["queues"]
    assert [(q["id"], q["name"], q["items_total"], q["items_done"]) for q in listed] == [
        (queue.id, "Clock calls", 2, 0)
    ]
    item = client.get(f"/api/queues/{queue.id}/next", **headers).json()["item"]
    assert item["trace_id"] == str(schema_trace.id) and item["step_seq"] == 2
    assert item["step"]["kind"] == "tool_call" and item["step"]["input"] == {"tz": 5}
    assert item["schema"]["properties"] == {"timezone": {"type": "string", "default": "UTC"}}

    response = post_label(
        client,
        headers,
        {
            "trace_id": str(schema_trace.id),
            "step_seq": 2,
            "verdict": "bad",
            "category": "wrong-arguments",
            "queue_id": queue.id,
            "corrected_call": {"name": "clock", "arguments": {"timezone": "Europe/Paris"}},
        },
    )
    assert response.status_code == 201, response.content
    annotation = response.json()["annotation"]
    assert annotation["id"] and annotation["author"] == "ana" and annotation["version"] == 1
    assert annotation["corrected_call"] == {
        "name": "clock",
        "arguments": {"timezone": "Europe/Paris"},
    }

    assert client.get("/api/queues", **headers).json()["queues"][0]["items_done"] == 1
    second = client.get(f"/api/queues/{queue.id}/next", **headers).json()["item"]
    assert second["step_seq"] == 5  # the retry; #2 is done
    assert (
        client.get(f"/api/queues/{queue.id}/next", **headers).json()["item"]["id"] == second["id"]
    )
    body = {"trace_id": str(schema_trace.id), "step_seq": 5, "verdict": "good"}
    assert post_label(client, headers, body).status_code == 201
    assert client.get(f"/api/queues/{queue.id}/next", **headers).json() == {"item": None}

    listed = client.get(f"/api/traces/{schema_trace.id}/annotations", **headers).json()
    assert [(a["step_seq"], a["verdict"], a["category"]) for a in listed["annotations"]] == [
        (2, "bad", "wrong-arguments"),
        (5, "good", None),
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"step_seq": 2, "verdict": "meh"}, "unknown verdict 'meh'"),
        ({"step_seq": 2, "verdict": "bad", "category": "nope"}, "unknown category 'nope'"),
        ({"step_seq": 42, "verdict": "bad"}, "has no step #42"),
        (
            {
                "step_seq": 2,
                "verdict": "bad",
                "corrected_call": {"name": "clock", "arguments": {"timezone": 7}},
            },
            "timezone: 7 is not of type 'string'",
        ),
        ({"step_seq": "two", "verdict": "bad"}, "step_seq must be an integer"),
    ],
)
def test_bad_labels_get_400_naming_the_problem(client, token_for, schema_trace, body, message):
    _, headers = token_for("ana")
    response = post_label(client, headers, {"trace_id": str(schema_trace.id), **body})
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert not Annotation.objects.exists()


def test_an_unknown_trace_is_a_400_too(client, token_for):
    _, headers = token_for("ana")
    response = post_label(
        client,
        headers,
        {"trace_id": "00000000-0000-0000-0000-000000000000", "step_seq": 1, "verdict": "good"},
    )
    assert response.status_code == 400 and "unknown trace" in response.json()["error"]


def test_an_edit_with_a_stale_version_is_a_409(client, token_for, schema_trace):
    _, headers = token_for("ana")
    body = {"trace_id": str(schema_trace.id), "step_seq": 2, "verdict": "bad"}
    assert post_label(client, headers, body).status_code == 201
    assert post_label(client, headers, {**body, "verdict": "good", "version": 1}).status_code == 201
    stale = post_label(client, headers, {**body, "verdict": "neutral", "version": 1})
    assert stale.status_code == 409 and "now version 2" in stale.json()["error"]
    assert Annotation.objects.get().verdict == "good"


def test_a_viewer_sees_labels_but_cannot_change_or_claim(
    client, token_for, schema_trace, demo_queue
):
    _, headers = token_for("vic", "viewer")
    body = {"trace_id": str(schema_trace.id), "step_seq": 2, "verdict": "bad"}
    assert post_label(client, headers, body).status_code == 403
    assert client.get(f"/api/queues/{demo_queue.id}/next", **headers).status_code == 403
    trace_id = demo_queue.items.first().trace_id
    labels = client.get(f"/api/traces/{trace_id}/annotations", **headers).json()["annotations"]
    assert labels and {a["author"] for a in labels} == {"demo-ana", "demo-ben"}
    assert client.get(f"/api/queues/{demo_queue.id}/agreement", **headers).status_code == 200


def test_an_annotator_sees_only_queues_they_are_on(client, token_for, make_user, schema_trace):
    ana, headers = token_for("ana")
    ben = make_user("ben")
    queue_create(name="Ben's", filter={"tool": "clock"}, annotators=[ben])
    open_to_all = queue_create(name="Anyone's", filter={"tool": "clock"})
    mine = queue_create(name="Ana's", filter={"tool": "clock"}, annotators=[ana])
    names = {q["name"] for q in client.get("/api/queues", **headers).json()["queues"]}
    assert names == {"Anyone's", "Ana's"}
    assert client.get("/api/queues").status_code == 401
    for queue in (open_to_all, mine):
        assert client.get(f"/api/queues/{queue.id}/next", **headers).status_code == 200
    bens = ben.annotation_queues.get()
    assert client.get(f"/api/queues/{bens.id}/next", **headers).status_code == 404


def test_the_agreement_endpoint_gives_kappa_alpha_and_disagreements(client, token_for, demo_queue):
    _, headers = token_for("root", "admin")
    body = client.get(f"/api/queues/{demo_queue.id}/agreement", **headers).json()
    assert body["kappa"] == pytest.approx(0.6557, abs=1e-4)
    assert body["alpha"] == pytest.approx(0.6570, abs=1e-4)
    assert body["disagreements"] == 3
    assert body["verdict"]["pairs"][0]["a"] == "demo-ana" and body["verdict"]["pairs"][0]["n"] == 28


def test_a_reviewer_adjudicates_through_the_api_and_the_disagreement_closes(
    client, token_for, demo_queue
):
    _, headers = token_for("root", "admin")
    agreement = client.get(f"/api/queues/{demo_queue.id}/agreement", **headers).json()
    first = agreement["disagreement_list"][0]
    response = post_label(
        client,
        headers,
        {
            "trace_id": first["trace_id"],
            "step_seq": first["step_seq"],
            "verdict": "bad",
            "category": "tool-failure",
            "gold": True,
        },
    )
    assert response.status_code == 201 and response.json()["annotation"]["role"] == "gold"
    after = client.get(f"/api/queues/{demo_queue.id}/agreement", **headers).json()
    assert (after["disagreements"], after["adjudicated"]) == (2, 1)
    _, annotator = token_for("ana")
    refused = post_label(
        client,
        annotator,
        {
            "trace_id": first["trace_id"],
            "step_seq": first["step_seq"],
            "verdict": "good",
            "gold": True,
        },
    )
    assert refused.status_code == 403
