"""The documented API: the OpenAPI document is valid, and every operation in it answers
with a status and a body that the document describes."""

from __future__ import annotations

import json

import pytest
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate

from agents.services import agent_run_start
from tooltrail.services import api_token_create
from traces.models import Trace
from traces.services import trace_finish

pytestmark = pytest.mark.django_db


@pytest.fixture
def token(make_user):
    return api_token_create(user=make_user("ann", "annotator"), name="t")[1]


@pytest.fixture
def document(client, token):
    response = client.get("/api/openapi.json", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200
    return response.json()


def body_check(document: dict, schema: dict, body) -> None:
    # "#/components/..." references resolve against the schema's root: give it the
    # document's components.
    OAS31Validator({**schema, "components": document["components"]}).validate(body)


def test_the_openapi_document_validates(document):
    validate(document)
    assert document["info"]["title"] == "Tooltrail API"
    paths = set(document["paths"])
    for path in (
        "/api/runs",
        "/api/traces",
        "/api/traces/list",
        "/api/traces/{trace_id}",
        "/api/traces/{trace_id}/steps",
        "/api/traces/{trace_id}/cancel",
        "/api/agents",
        "/api/agents/{slug}",
        "/api/endpoints",
        "/api/endpoints/{endpoint_id}",
        "/api/tools",
        "/api/tools/{tool_id}",
        "/api/toolsets",
        "/api/toolsets/{slug}",
    ):
        assert path in paths, path


def test_every_operation_answers_as_documented(client, document, token, demo_agents):
    from toolsapp.models import Tool

    done = agent_run_start(agent=demo_agents["demo"], input="first")
    trace_finish(trace_id=done.id, status=Trace.Status.SUCCEEDED, output="ok")
    queued = agent_run_start(agent=demo_agents["demo"], input="second")
    values = {
        "trace_id": str(queued.id),
        "slug": "demo",
        "endpoint_id": str(demo_agents["demo"].endpoint_id),
        "tool_id": str(Tool.objects.get(name="calculator").id),
    }
    bodies = {"/api/runs": {"agent": "demo", "input": "hi"}}
    toolset_paths = {"/api/toolsets/{slug}": "builtin"}
    seen = 0
    for path, methods in document["paths"].items():
        for method, op in methods.items():
            url = path
            for name, value in values.items():
                url = url.replace("{" + name + "}", toolset_paths.get(path, value))
            kwargs = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
            if method == "post":
                kwargs.update(
                    data=json.dumps(bodies.get(path, {})), content_type="application/json"
                )
            response = getattr(client, method)(url, **kwargs)
            documented = op["responses"]
            assert str(response.status_code) in documented, (method, url, response.content)
            schema = documented[str(response.status_code)]["content"]["application/json"]["schema"]
            body_check(document, schema, response.json())
            seen += 1
    assert seen >= 13


def test_the_trace_list_filters_and_pages_by_keyset(client, token, demo_agents):
    from agents.demo import demo_traces_seed

    demo_traces_seed()
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    failed = client.get("/api/traces/list?status=failed&agent=demo", **headers).json()
    assert [t["status"] for t in failed["items"]] == ["failed", "failed"]
    assert failed["next"] is None
    by_tool = client.get("/api/traces/list?tool=sleep", **headers).json()["items"]
    assert [t["status"] for t in by_tool] == ["cancelled"]
    seen, cursor = [], None
    while True:
        query = "limit=4" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(f"/api/traces/list?{query}", **headers).json()
        seen += [t["id"] for t in page["items"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == [str(t.id) for t in Trace.objects.order_by("-created_at", "-id")]
    assert len(seen) == 6
    recent = client.get(
        "/api/traces/list?since=2000-01-01T00:00:00Z&until=2999-01-01T00:00:00Z", **headers
    )
    assert len(recent.json()["items"]) == 6


@pytest.mark.parametrize(
    ("query", "message", "code"),
    [
        ("status=done", "status must be one of", "bad_request"),
        ("since=yesterday", "since must be a date", "bad_request"),
        ("cursor=garbage", "page cursor is not valid", "bad_cursor"),
        ("before=garbage", "page cursor is not valid", "bad_cursor"),
        ("limit=1000", "limit must be between 1 and 200", "bad_request"),
        ("limit=many", "invalid request: limit", "invalid"),
    ],
)
@pytest.mark.parametrize("path", ["/api/traces", "/api/traces/list"])
def test_bad_trace_list_queries_are_explained_as_json(client, token, query, message, code, path):
    response = client.get(f"{path}?{query}", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert response.json()["code"] == code


def test_the_trace_list_and_its_old_name_are_one_endpoint(client, token, demo_agents):
    from agents.demo import demo_traces_seed

    demo_traces_seed()
    Trace.objects.filter(status="cancelled").update(otel_trace_id="ab" * 16)
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    for query, count in (("", 6), ("status=failed&tool=calculator", 1), ("q=Tokyo", None)):
        main = client.get(f"/api/traces?{query}", **headers).json()
        alias = client.get(f"/api/traces/list?{query}", **headers).json()
        assert main["items"] == alias["items"] == main["traces"], query
        assert "traces" not in alias
        if count is not None:
            assert len(main["items"]) == count
    # The filters only the page had before (otel_trace_id, endpoint, tokens) answer on both.
    for path in ("/api/traces", "/api/traces/list"):
        found = client.get(f"{path}?otel_trace_id={'AB' * 16}", **headers).json()["items"]
        assert [t["status"] for t in found] == ["cancelled"]
        assert client.get(f"{path}?min_tokens=1000000", **headers).json()["items"] == []
    # Pages: `prev` leads back, and `cursor` is another name for `before`.
    first = client.get("/api/traces?limit=4", **headers).json()
    second = client.get(f"/api/traces?limit=4&before={first['next']}", **headers).json()
    again = client.get(f"/api/traces/list?limit=4&cursor={first['next']}", **headers).json()
    assert second["items"] == again["items"] and len(second["items"]) == 2
    back = client.get(f"/api/traces?limit=4&after={second['prev']}", **headers).json()
    assert back["items"] == first["items"]


def test_a_wrong_method_and_an_unknown_path_answer_json(client, token):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    wrong = client.delete("/api/agents", **headers)
    assert wrong.status_code == 405
    assert wrong.json() == {"error": "method DELETE not allowed", "code": "method_not_allowed"}
    missing = client.get("/api/nothing-here", **headers)
    assert missing.status_code == 404
    assert missing.json()["code"] == "not_found"


def test_the_docs_page_lists_every_operation_from_the_document(client, make_user, document):
    client.force_login(make_user("dora", "viewer"))
    page = client.get("/api/docs").content.decode()
    for path in document["paths"]:
        assert path in page
    assert "cdn" not in page.lower()


def test_error_pages_are_styled_for_people_and_json_under_the_api(client, make_user):
    client.force_login(make_user("vera", "viewer"))
    page = client.get("/agents/nobody-at-all/")
    assert page.status_code == 404
    assert "There is nothing at this address." in page.content.decode()
    assert 'class="topbar"' in page.content.decode()
    forbidden = client.post("/endpoints/new/", {"name": "x"})
    assert forbidden.status_code == 403 and "Not allowed" in forbidden.content.decode()
    assert client.get("/favicon.ico")["Location"].endswith("favicon.svg")
