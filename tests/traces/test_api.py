"""The JSON API: start runs, read steps by cursor, cancel."""

from __future__ import annotations

import json
import uuid

import pytest

from tooltrail.services import api_token_create
from traces.models import Trace
from traces.services import trace_create, trace_finish

pytestmark = pytest.mark.django_db


@pytest.fixture
def token_for(make_user):
    def make(role: str = "annotator", username: str | None = None) -> str:
        user = make_user(username or f"{role}-api", role)
        return api_token_create(user=user, name="tests")[1]

    return make


def auth(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def post_run(client, body, token: str | None = None):
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    headers = auth(token) if token else {}
    return client.post("/api/runs", data=data, content_type="application/json", **headers)


# --- POST /api/runs ---------------------------------------------------------------------


def test_a_token_holder_starts_a_run_and_gets_the_queued_trace(client, token_for, demo_agents):
    response = post_run(client, {"agent": "demo", "input": "  What is 2+2?  "}, token_for())

    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "queued"
    assert body["agent_slug"] == "demo"
    assert body["input"] == "What is 2+2?"
    assert body["url"] == f"http://testserver/traces/{body['id']}/"
    assert body["steps_url"] == f"http://testserver/api/traces/{body['id']}/steps"
    trace = Trace.objects.get(pk=body["id"])
    assert trace.status == Trace.Status.QUEUED
    assert trace.created_by.username == "annotator-api"
    assert trace.metadata["agent_id"] == demo_agents["demo"].id


def test_starting_a_run_without_a_token_is_refused(client, demo_agents):
    response = post_run(client, {"agent": "demo", "input": "hi"})
    assert response.status_code == 401
    assert "Authorization: Bearer" in response.json()["error"]
    assert not Trace.objects.exists()


def test_a_wrong_token_is_refused(client, demo_agents):
    response = post_run(client, {"agent": "demo", "input": "hi"}, "tt_not-a-real-token")
    assert response.status_code == 401
    assert response.json() == {"error": "invalid or revoked API token", "code": "invalid_token"}
    assert not Trace.objects.exists()


def test_a_viewer_token_cannot_start_a_run(client, token_for, demo_agents):
    response = post_run(client, {"agent": "demo", "input": "hi"}, token_for("viewer"))
    assert response.status_code == 403
    assert response.json() == {"error": "your role does not allow this", "code": "forbidden"}
    assert not Trace.objects.exists()


def test_a_body_that_is_not_json_is_explained(client, token_for, demo_agents):
    response = post_run(client, '{"agent": "demo",', token_for())
    assert response.status_code == 400
    assert response.json()["error"].startswith("the request body is not valid JSON")


def test_a_body_that_is_not_an_object_is_explained(client, token_for):
    response = post_run(client, '["demo"]', token_for())
    assert response.status_code == 400
    assert response.json() == {
        "error": "the request body must be a JSON object",
        "code": "bad_request",
    }


def test_an_unknown_agent_is_not_found(client, token_for, demo_agents):
    response = post_run(client, {"agent": "nobody", "input": "hi"}, token_for())
    assert response.status_code == 404
    assert response.json() == {"error": "no agent with slug 'nobody'", "code": "not_found"}


def test_a_missing_agent_slug_is_explained(client, token_for):
    response = post_run(client, {"input": "hi"}, token_for())
    assert response.status_code == 400
    assert "agent" in response.json()["error"]


def test_an_empty_input_is_refused_and_nothing_is_queued(client, token_for, demo_agents):
    response = post_run(client, {"agent": "demo", "input": "   "}, token_for())
    assert response.status_code == 400
    assert response.json() == {
        "error": "the input is empty: say what the agent should do",
        "code": "bad_request",
    }
    assert not Trace.objects.exists()


def test_an_input_that_is_not_text_is_refused(client, token_for, demo_agents):
    response = post_run(client, {"agent": "demo", "input": ["hi"]}, token_for())
    assert response.status_code == 400
    assert response.json() == {"error": '"input" must be a string', "code": "bad_request"}


def test_runs_cannot_be_listed_with_get(client, token_for):
    response = client.get("/api/runs", **auth(token_for()))
    assert response.status_code == 405


def test_a_signed_in_browser_must_pass_the_csrf_check(make_user, demo_agents):
    from django.test import Client

    browser = Client(enforce_csrf_checks=True)
    browser.force_login(make_user("carol", "annotator"))
    response = post_run(browser, {"agent": "demo", "input": "hi"})
    assert response.status_code == 403
    assert response.json() == {"error": "CSRF check failed", "code": "csrf_failed"}
    assert not Trace.objects.exists()


# --- GET /api/traces/<id>/steps?after=N ---------------------------------------------------


def test_steps_after_a_cursor_come_in_order_with_the_next_cursor(client, token_for, recorded_trace):
    trace, steps = recorded_trace
    response = client.get(f"/api/traces/{trace.id}/steps?after=1", **auth(token_for("viewer")))

    assert response.status_code == 200
    body = response.json()
    assert [s["seq"] for s in body["steps"]] == [2, 3, 4]
    assert [s["kind"] for s in body["steps"]] == ["tool_call", "tool_result", "final"]
    assert [s["parent_seq"] for s in body["steps"]] == [1, 2, 1]
    assert body["steps"][1]["output"] == {"text": "<script>alert(1)</script>"}
    assert body["cursor"] == 4
    assert body["more"] is False
    assert body["trace"]["step_count"] == 4


def test_all_steps_come_without_a_cursor_and_none_after_the_last(client, token_for, recorded_trace):
    trace, _ = recorded_trace
    headers = auth(token_for("viewer"))
    everything = client.get(f"/api/traces/{trace.id}/steps", **headers).json()
    assert [s["seq"] for s in everything["steps"]] == [1, 2, 3, 4]
    caught_up = client.get(f"/api/traces/{trace.id}/steps?after=4", **headers).json()
    assert caught_up["steps"] == []
    assert caught_up["cursor"] == 4


def test_a_limit_pages_through_the_steps(client, token_for, recorded_trace):
    trace, _ = recorded_trace
    headers = auth(token_for("viewer"))
    first = client.get(f"/api/traces/{trace.id}/steps?limit=3", **headers).json()
    assert ([s["seq"] for s in first["steps"]], first["cursor"], first["more"]) == (
        [1, 2, 3],
        3,
        True,
    )
    rest = client.get(f"/api/traces/{trace.id}/steps?after=3&limit=3", **headers).json()
    assert [s["seq"] for s in rest["steps"]] == [4]


@pytest.mark.parametrize("query", ["after=two", "after=-1", "limit=0", "after=1.5"])
def test_a_bad_cursor_is_refused(client, token_for, recorded_trace, query):
    trace, _ = recorded_trace
    response = client.get(f"/api/traces/{trace.id}/steps?{query}", **auth(token_for()))
    assert response.status_code == 400
    assert "after" in response.json()["error"]


def test_steps_of_an_unknown_trace_are_not_found_as_json(client, token_for):
    response = client.get(f"/api/traces/{uuid.uuid4()}/steps", **auth(token_for()))
    assert response.status_code == 404
    assert "error" in response.json()


def test_reading_steps_needs_a_token_or_a_session(client, recorded_trace, make_user):
    trace, _ = recorded_trace
    assert client.get(f"/api/traces/{trace.id}/steps").status_code == 401
    client.force_login(make_user("dave", "viewer"))
    assert client.get(f"/api/traces/{trace.id}/steps").status_code == 200


def test_the_trace_endpoint_returns_the_trace(client, token_for, recorded_trace):
    trace, _ = recorded_trace
    body = client.get(f"/api/traces/{trace.id}", **auth(token_for("viewer"))).json()
    assert (body["id"], body["status"], body["prompt_tokens"]) == (str(trace.id), "running", 12)


# --- POST /api/traces/<id>/cancel ---------------------------------------------------------


def test_cancelling_a_queued_run_ends_it(client, token_for):
    trace = trace_create(name="q", input="go")
    response = client.post(f"/api/traces/{trace.id}/cancel", **auth(token_for()))
    assert response.status_code == 202
    assert response.json()["status"] == "cancelled"
    trace.refresh_from_db()
    assert trace.status == Trace.Status.CANCELLED


def test_cancelling_a_running_run_asks_its_worker_to_stop(client, token_for, recorded_trace):
    trace, _ = recorded_trace
    response = client.post(f"/api/traces/{trace.id}/cancel", **auth(token_for()))
    assert response.status_code == 202
    assert response.json()["status"] == "running"
    trace.refresh_from_db()
    assert trace.cancel_requested


def test_cancelling_a_finished_run_is_a_conflict(client, token_for, recorded_trace):
    trace, _ = recorded_trace
    trace_finish(trace_id=trace.id, status="succeeded", output="hi")
    response = client.post(f"/api/traces/{trace.id}/cancel", **auth(token_for()))
    assert response.status_code == 409
    assert response.json() == {"error": "trace is already succeeded", "code": "conflict"}


def test_a_viewer_token_cannot_cancel(client, token_for, recorded_trace):
    trace, _ = recorded_trace
    response = client.post(f"/api/traces/{trace.id}/cancel", **auth(token_for("viewer")))
    assert response.status_code == 403
    trace.refresh_from_db()
    assert (trace.status, trace.cancel_requested) == ("running", False)
