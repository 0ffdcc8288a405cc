"""POST /v1/traces and GET /api/traces: the OTLP/HTTP receiver as an exporter sees it."""

from __future__ import annotations

import gzip
import json

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tooltrail.services import api_token_create
from traces.models import Step, Trace

from .otlp_builders import (
    genai_agent_spans,
    new_span_id,
    new_trace_id,
    request,
    span,
    to_otlp_json,
)

pytestmark = pytest.mark.django_db
PROTO = "application/x-protobuf"


@pytest.fixture
def token(make_user):
    return api_token_create(user=make_user("exporter", "annotator"), name="otel")[1]


def send(client, req, token, *, kind=PROTO, gzipped=False, **headers):
    body = req.SerializeToString() if kind == PROTO else json.dumps(to_otlp_json(req)).encode()
    if gzipped:
        body = gzip.compress(body)
        headers["HTTP_CONTENT_ENCODING"] = "gzip"
    if token:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client.post("/v1/traces", data=body, content_type=kind, **headers)


def trace_steps(client, token, otel_trace_id: str):
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    found = client.get(f"/api/traces?otel_trace_id={otel_trace_id}", **auth).json()["traces"]
    assert len(found) == 1
    steps = client.get(f"/api/traces/{found[0]['id']}/steps?after=0", **auth).json()["steps"]
    return found[0], steps


def test_protobuf_spans_become_a_running_trace_with_the_right_tree(client, token):
    tid = new_trace_id()
    response = send(client, request(*genai_agent_spans(tid)), token)

    assert response.status_code == 200
    assert response["Content-Type"] == PROTO
    assert not ExportTraceServiceResponse.FromString(response.content).HasField("partial_success")
    trace, steps = trace_steps(client, token, tid.hex())
    assert trace["status"] == "running"
    assert trace["source"] == "otlp"
    assert trace["name"] == "Weather"
    assert (trace["prompt_tokens"], trace["completion_tokens"]) == (40, 12)
    assert [(s["seq"], s["kind"], s["name"], s["parent_seq"]) for s in steps] == [
        (1, "agent", "Weather", None),
        (2, "model_call", "gpt-4o", 1),
        (3, "tool_call", "get_weather", 1),
    ]
    assert steps[1]["parent_span_id"] == steps[0]["span_id"]
    assert steps[1]["attributes"]["custom.flag"] is True
    assert steps[2]["input"] == {"city": "Paris"}
    assert steps[2]["duration_ms"] == pytest.approx(1.0)


def test_json_and_gzip_are_accepted_and_answered_in_json(client, token):
    tid = new_trace_id()
    response = send(
        client, request(*genai_agent_spans(tid)), token, kind="application/json", gzipped=True
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == {}
    assert len(trace_steps(client, token, tid.hex())[1]) == 3


def test_spans_arriving_out_of_order_in_many_batches_form_the_right_tree(client, token):
    tid = new_trace_id()
    root, mid = new_span_id(), new_span_id()
    leaf = span("leaf", trace_id=tid, parent=mid, start=3)
    # The leaf first, its grandparent next, its parent last.
    assert send(client, request(leaf), token).status_code == 200
    assert send(client, request(span("root", trace_id=tid, span_id=root)), token).status_code == 200
    assert (
        send(
            client, request(span("mid", trace_id=tid, span_id=mid, parent=root)), token
        ).status_code
        == 200
    )

    _, steps = trace_steps(client, token, tid.hex())
    by_name = {s["name"]: s for s in steps}
    assert by_name["leaf"]["parent_seq"] == by_name["mid"]["seq"]
    assert by_name["mid"]["parent_seq"] == by_name["root"]["seq"]
    assert by_name["root"]["parent_seq"] is None
    leaf_row = Step.objects.get(span_id=by_name["leaf"]["span_id"])
    assert leaf_row.parent.name == "mid"


def test_a_batch_sent_twice_is_saved_once(client, token):
    tid = new_trace_id()
    req = request(*genai_agent_spans(tid))
    send(client, req, token)
    send(client, req, token)
    assert Trace.objects.get(otel_trace_id=tid.hex()).steps.count() == 3


def test_spans_without_valid_ids_are_reported_as_partial_success(client, token):
    tid = new_trace_id()
    req = request(span("ok", trace_id=tid), span("bad", trace_id=tid, span_id=b"\x00" * 8))
    response = send(client, req, token, kind="application/json")
    assert response.status_code == 200
    partial = response.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "1"
    assert "span id" in partial["errorMessage"]
    assert Trace.objects.get(otel_trace_id=tid.hex()).steps.count() == 1


def test_a_malformed_body_is_400_with_the_reason(client, token):
    response = client.post(
        "/v1/traces",
        data=b"{oops",
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["message"]
    assert not Trace.objects.exists()


def test_an_unsupported_content_type_is_415(client, token):
    response = client.post(
        "/v1/traces", data="hi", content_type="text/plain", HTTP_AUTHORIZATION=f"Bearer {token}"
    )
    assert response.status_code == 415
    assert "application/x-protobuf" in response.json()["message"]


def test_token_problems_are_401_and_403(client, make_user):
    req = request(span("s", trace_id=new_trace_id()))
    assert send(client, req, None).status_code == 401
    assert send(client, req, "tt_not-a-real-token").status_code == 401
    viewer = api_token_create(user=make_user("watcher", "viewer"))[1]
    refused = send(client, req, viewer)
    assert refused.status_code == 403
    assert not Trace.objects.exists()


def test_a_body_over_the_size_limit_is_413(client, token, settings):
    settings.TOOLTRAIL_OTLP_MAX_BYTES = 2_000
    spans = [span(f"s{i}", trace_id=new_trace_id(), attrs={"pad": "x" * 100}) for i in range(30)]
    assert send(client, request(*spans), token).status_code == 413
    # A small gzip body that inflates past the limit is refused the same way.
    assert send(client, request(*spans), token, gzipped=True).status_code == 413
    assert not Trace.objects.exists()


def test_the_trace_list_api_finds_nothing_for_an_unknown_id(client, token):
    response = client.get(
        f"/api/traces?otel_trace_id={new_trace_id().hex()}", HTTP_AUTHORIZATION=f"Bearer {token}"
    )
    assert response.json() == {"traces": []}


def test_a_process_with_too_many_uploads_in_hand_answers_503_retry_after(settings):
    import asyncio

    from traces.api_ingest import IngestBackpressure

    settings.TOOLTRAIL_OTLP_MAX_PENDING = 1
    release = asyncio.Event()

    async def slow_app(scope, receive, send):
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    app = IngestBackpressure(slow_app)
    sent: list[list[dict]] = [[], []]

    def call(i):
        async def send(message):
            sent[i].append(message)

        async def receive():
            return {"type": "http.request", "body": b""}

        return app({"type": "http", "path": "/v1/traces", "method": "POST"}, receive, send)

    async def two_at_once():
        first = asyncio.ensure_future(call(0))
        await asyncio.sleep(0)
        await call(1)
        release.set()
        await first

    asyncio.run(two_at_once())
    assert sent[0][0]["status"] == 200
    assert sent[1][0]["status"] == 503
    assert (b"retry-after", b"2") in sent[1][0]["headers"]


def test_a_batch_of_spans_is_saved_in_one_go_with_one_live_broadcast(
    client, token, django_capture_on_commit_callbacks
):
    tid, root = new_trace_id(), new_span_id()
    send(client, request(span("root", trace_id=tid, span_id=root)), token)
    children = [span(f"child {i}", trace_id=tid, parent=root, start=i) for i in range(30)]
    with django_capture_on_commit_callbacks() as callbacks:
        assert send(client, request(*children), token).status_code == 200
    # One step message (its timestamp, then the send), not one per span.
    assert len(callbacks) == 2
    trace = Trace.objects.get(otel_trace_id=tid.hex())
    assert trace.step_count == 31
    assert list(trace.steps.order_by("seq").values_list("name", flat=True))[1:4] == [
        "child 0",
        "child 1",
        "child 2",
    ]


def test_an_ingested_trace_opens_in_the_debugger(client, token, make_user):
    tid = new_trace_id()
    send(client, request(*genai_agent_spans(tid)), token)
    client.force_login(make_user("reader", "viewer"))
    trace = Trace.objects.get(otel_trace_id=tid.hex())
    page = client.get(trace.get_absolute_url())
    assert page.status_code == 200
    html = page.content.decode()
    for text in ("Weather", "gpt-4o", "get_weather", "Agent"):
        assert text in html


def test_export_and_import_over_the_api(client, token, make_user):
    tid = new_trace_id()
    send(client, request(*genai_agent_spans(tid)), token)
    trace = Trace.objects.get(otel_trace_id=tid.hex())
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}

    exported = client.get(f"/api/traces/{trace.id}/export?format=json", **auth)
    assert exported.status_code == 200
    assert "attachment" in exported["Content-Disposition"]
    otlp = client.get(f"/api/traces/{trace.id}/export?format=otlp", **auth).json()
    assert len(otlp["resourceSpans"][0]["scopeSpans"][0]["spans"]) == 3
    assert client.get(f"/api/traces/{trace.id}/export?format=xml", **auth).status_code == 400

    viewer = api_token_create(user=make_user("viewer-2", "viewer"))[1]
    body = exported.content
    refused = client.post(
        "/api/traces/import",
        data=body,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {viewer}",
    )
    assert refused.status_code == 403
    duplicate = client.post(
        "/api/traces/import", data=body, content_type="application/json", **auth
    )
    assert duplicate.status_code == 400
    assert "already exists" in duplicate.json()["error"]

    trace_id = trace.id
    trace.delete()
    imported = client.post("/api/traces/import", data=body, content_type="application/json", **auth)
    assert imported.status_code == 201
    assert imported.json()["id"] == str(trace_id)
    again = client.get(f"/api/traces/{trace_id}/export?format=json", **auth)
    assert again.json() == exported.json()
