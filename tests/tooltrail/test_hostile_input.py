"""Bad input gets a clear 4xx, never a 500: a table of hostile inputs sent to every
endpoint (pages and API, found from the URL configuration, so new ones are covered),
both websocket consumers and every management command."""

from __future__ import annotations

import io
import json

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.core.management import CommandError, call_command
from django.test import Client

from tooltrail.asgi import application
from tooltrail.services import api_token_create
from traces.models import Trace
from traces.services import step_record, trace_create, trace_start

from ..hostile_table import BODIES, NESTED, QUERIES, WS_PATHS, WS_QUERIES, paths_for, routes

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(make_user, demo_agents):
    trace = trace_create(name="t", input="x", agent_slug="demo")
    trace_start(trace_id=trace.id, worker="w:1")
    step_record(trace_id=trace.id, kind="tool_result", name="echo", output={"text": "x" * 10})
    user = make_user("anna", "annotator")
    _, token = api_token_create(user=user)
    session = Client(raise_request_exception=False)
    session.force_login(user)
    # A browser without the CSRF token: Django's CSRF failure answers too (JSON on /api/).
    no_csrf = Client(raise_request_exception=False, enforce_csrf_checks=True)
    no_csrf.force_login(user)
    anonymous = Client(raise_request_exception=False)
    bearer = Client(raise_request_exception=False, HTTP_AUTHORIZATION=f"Bearer {token}")
    return {"trace": str(trace.id), "clients": [session, anonymous, bearer], "no_csrf": no_csrf}


def problems_of(client: Client, method: str, path: str, **kwargs) -> list[str]:
    response = getattr(client, method)(path, **kwargs)
    what = f"{method.upper()} {path[:120]} {kwargs.get('content_type', '')}"
    found = []
    unhealthy = path.startswith("/healthz") and response.status_code == 503  # no worker here
    if response.status_code >= 500 and not unhealthy:
        found.append(f"{what} → {response.status_code}")
    json_error = response.get("Content-Type", "").startswith("application/json")
    if path.startswith("/api/") and response.status_code >= 400 and not json_error:
        found.append(f"{what} → {response.status_code} without a JSON error")
    return found


def test_every_endpoint_answers_hostile_input_without_a_server_error(world):
    """One pass over every route (one setup for all: the table is the point)."""
    session, _, bearer = world["clients"]
    problems = []
    for route, converters in routes():
        paths = paths_for(route, converters, world["trace"])
        for path in paths:
            for client in world["clients"]:
                problems += problems_of(client, "get", path)
                problems += problems_of(client, "post", path, data={})
            problems += problems_of(world["no_csrf"], "post", path, data={})
        for query in QUERIES:
            problems += problems_of(session, "get", paths[0] + query)
        for content_type, body in BODIES:
            for client in (session, bearer):
                problems += problems_of(
                    client, "post", paths[0], data=body, content_type=content_type
                )
    assert problems == []


def test_numbered_routes_over_demo_data_answer_huge_ids_without_a_server_error(make_user):
    """With the demo data the first number of a route names something real (queue 1, its
    items, endpoint 1…), so the route's next number, past any id column, reaches the
    database unless it is stopped before."""
    call_command("seed_demo", stdout=io.StringIO())
    admin = Client(raise_request_exception=False)
    admin.force_login(make_user("root", "admin"))
    trace = str(Trace.objects.order_by("created_at").first().id)
    problems = []
    for route, converters in routes():
        if "Int" not in "".join(type(c).__name__ for c in converters.values()):
            continue
        for path in paths_for(route, converters, trace):
            problems += problems_of(admin, "get", path)
            problems += problems_of(admin, "post", path, data={})
    assert problems == []


def test_bodies_over_the_limit_get_413_json_on_the_api_and_a_page_elsewhere(world):
    session, _, bearer = world["clients"]
    big = json.dumps({"agent": "demo", "input": "x" * 3_000_000})
    api = bearer.post("/api/runs", data=big, content_type="application/json")
    assert api.status_code == 413 and "limit" in api.json()["error"]
    page = session.post("/agents/demo/run/", {"input": "x" * 3_000_000})
    assert page.status_code == 413 and b"That was too large" in page.content
    nested = bearer.post("/api/runs", data=NESTED, content_type="application/json")
    assert (nested.status_code, nested.json()) == (
        400,
        {"error": "the request body is not valid JSON: nested too deeply", "code": "bad_request"},
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", WS_PATHS)
def test_every_socket_survives_hostile_paths_and_query_strings(make_user, path):
    trace = trace_create(name="t", input="x")
    step_record(trace_id=trace.id, kind="tool_result", output=[1, {"odd": None}])
    _, token = api_token_create(user=make_user("bot", "viewer"))
    headers = [(b"authorization", f"Bearer {token}".encode()), (b"origin", b"http://127.0.0.1")]

    async def scenario() -> list:
        outcomes = []
        for query in WS_QUERIES:
            target = path.replace("{trace}", str(trace.id)) + (
                "?" + query.decode("latin-1") if query else ""
            )
            communicator = WebsocketCommunicator(application, target, headers=headers)
            communicator.scope["query_string"] = query  # as sent, not re-encoded
            connected, code = await communicator.connect(timeout=5)
            if connected:
                await communicator.receive_nothing(timeout=0.1)
            outcomes.append((connected, code))
            await communicator.disconnect()
        return outcomes

    outcomes = async_to_sync(scenario)()  # raises if the consumer crashed
    if path in ("/ws/traces/{trace}/", "/ws/traces/"):
        assert all(connected for connected, _ in outcomes)
    else:
        assert all(not connected for connected, _ in outcomes)


COMMANDS = [
    ("run_agent", ["--agent", "no-such-agent", "--input", "x"]),
    ("run_agent", ["--agent", "demo", "--input", "   "]),
    ("run_agent", ["--agent", "demo\x00", "--input", "x"]),
    ("create_api_token", ["--user", "nobody"]),
    ("create_api_token", ["--user", "anna", "--expires-in-days", "-3"]),
    ("create_api_token", ["--user", "anna", "--name", "n" * 500]),
    ("ensure_admin", ["--username", "anna"]),
    ("seed_demo", []),
    ("dataset_import", ["/nonexistent/file.jsonl", "--format", "jsonl", "--name", "x"]),
    ("dataset_import", ["{garbage}", "--format", "bfcl", "--name", "bad name!"]),
    ("run_experiment", ["--agent", "nope", "--dataset", "nope", "--here"]),
    ("run_experiment", ["--agent", "demo", "--dataset", "nope", "--limit", "-1", "--here"]),
    ("score_bfcl", ["--input", "/nonexistent.jsonl", "--output", "/nonexistent/dir/out.jsonl"]),
    ("score_bfcl", ["--input", "{garbage}", "--output", "{out}"]),
    ("merge_models", ["{garbage}", "{out}"]),
]


@pytest.mark.parametrize(
    ("name", "args"), COMMANDS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(COMMANDS)]
)
def test_every_command_refuses_bad_arguments_with_a_clear_message(world, tmp_path, name, args):
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b'{"id": 1, "question": [[[\xff\xfe not json\n' + b"[" * 50_000)
    args = [
        a.replace("{garbage}", str(garbage)).replace("{out}", str(tmp_path / "out")) for a in args
    ]
    try:
        call_command(name, *args, stdout=open("/dev/null", "w"), stderr=open("/dev/null", "w"))  # noqa: SIM115
    except CommandError as exc:
        assert str(exc).strip()


ODD_STEPS = [
    # (kind, input, output, metadata): what an exporter, an old version or a bug may store
    ("model_call", [1, 2], "just text", []),
    (
        "model_call",
        {"messages": "nope", "earlier_messages": "x", "earlier_from_step": [1]},
        {"tool_calls": "x"},
        {"parent_seq": "<b>"},
    ),
    (
        "model_call",
        {"messages": [], "earlier_messages": 3, "earlier_from_step": 4},
        {"tool_calls": [5, None, {"name": 7}], "content": 9},
        {"truncated": "all"},
    ),
    ("final", None, [{"content": 1}], {"truncated": {"<script>": 5, "output": "x"}}),
    (
        "tool_result",
        {"deep": [[[[[[[[[[]]]]]]]]]]},
        {"content": {"a": None}},
        {"schema": 5, "parent_seq": 10**20},
    ),
    ("unknown_kind", "x", 1.5, None),
]


@pytest.mark.django_db(transaction=True)
def test_the_trace_page_and_socket_render_stored_steps_of_any_shape(make_user):
    from traces.models import Step

    trace = trace_create(name="odd", input="x")
    for seq, (kind, input, output, metadata) in enumerate(ODD_STEPS, start=1):
        Step.objects.create(
            trace=trace, seq=seq, kind=kind, input=input, output=output, metadata=metadata or {}
        )
    trace.__class__.objects.filter(pk=trace.id).update(step_count=len(ODD_STEPS))
    user = make_user("vic", "viewer")
    client = Client(raise_request_exception=True)
    client.force_login(user)
    assert client.get(f"/traces/{trace.id}/").status_code == 200
    for seq in range(1, len(ODD_STEPS) + 1):
        assert client.get(f"/traces/{trace.id}/?step={seq}").status_code == 200
        assert (
            client.get(f"/traces/{trace.id}/steps/{seq}/", HTTP_HX_REQUEST="true").status_code
            == 200
        )
    assert len(client.get(f"/api/traces/{trace.id}/steps").json()["steps"]) == len(ODD_STEPS)

    _, token = api_token_create(user=user)
    headers = [(b"authorization", f"Bearer {token}".encode()), (b"origin", b"http://127.0.0.1")]

    async def catch_up(query: str) -> str:
        communicator = WebsocketCommunicator(
            application, f"/ws/traces/{trace.id}/?{query}", headers=headers
        )
        connected, _ = await communicator.connect(timeout=5)
        assert connected
        received = await communicator.receive_from(timeout=5)
        await communicator.disconnect()
        return received

    assert 'id="step-6"' in async_to_sync(catch_up)("after=0")
    assert len(json.loads(async_to_sync(catch_up)("after=0&format=json"))["steps"]) == 6


@pytest.mark.django_db
def test_the_json_api_answers_any_json_body_with_a_json_status(world):
    """Hypothesis: whatever JSON is posted to POST /api/runs, the answer is a 201 or a
    JSON 4xx error, never a 500 or an HTML page."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    bearer = world["clients"][2]
    values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=8), children, max_size=4)
        ),
        max_leaves=15,
    )
    bodies = values | st.fixed_dictionaries(
        {"agent": values | st.sampled_from(["demo", "local", ""]), "input": values}
    )

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(bodies)
    def post(body) -> None:
        response = bearer.post("/api/runs", data=json.dumps(body), content_type="application/json")
        assert response.status_code in (201, 400, 404), (body, response.status_code)
        assert response["Content-Type"].startswith("application/json")
        if response.status_code != 201:
            assert response.json()["error"]

    post()
