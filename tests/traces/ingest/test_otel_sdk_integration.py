"""The real OpenTelemetry Python SDK exporting GenAI spans to the running stack."""

from __future__ import annotations

import json

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def token(make_user) -> str:
    from tooltrail.services import api_token_create

    return api_token_create(user=make_user("otel-exporter", role="annotator"))[1]


@pytest.fixture
def api(stack, token):
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=stack.base_url, headers=headers, timeout=10) as client:
        yield client


def tracer_for(stack, token, *, batch: bool):
    exporter = OTLPSpanExporter(
        endpoint=f"{stack.base_url}/v1/traces",
        headers={"Authorization": f"Bearer {token}"},
        # The batched exporter also compresses, as production exporters usually do.
        compression=Compression.Gzip if batch else Compression.NoCompression,
    )
    provider = TracerProvider(resource=Resource.create({"service.name": "weather-agent"}))
    provider.add_span_processor(
        BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
    )
    return provider, provider.get_tracer("tests.weather")


def run_weather_agent(tracer) -> str:
    """An agent: one model call asking for two tools, the tools (one fails), a final
    model call. Returns the OTLP trace id (hex)."""
    with tracer.start_as_current_span(
        "invoke_agent weather",
        attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "weather"},
    ) as root:
        with tracer.start_as_current_span(
            "chat small-model",
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "small-model",
                "gen_ai.usage.input_tokens": 30,
                "gen_ai.usage.output_tokens": 9,
                "gen_ai.input.messages": json.dumps(
                    [{"role": "user", "parts": [{"type": "text", "content": "Paris and Oslo?"}]}]
                ),
            },
        ):
            pass
        for city, fails in (("Paris", False), ("Oslo", True)):
            with tracer.start_as_current_span(
                "execute_tool get_weather",
                attributes={
                    "gen_ai.operation.name": "execute_tool",
                    "gen_ai.tool.name": "get_weather",
                    "gen_ai.tool.call.id": f"call-{city}",
                    "gen_ai.tool.call.arguments": json.dumps({"city": city}),
                },
                record_exception=False,
                set_status_on_exception=False,
            ) as tool:
                if fails:
                    tool.set_status(Status(StatusCode.ERROR, "station offline"))
                else:
                    tool.set_attribute("gen_ai.tool.call.result", json.dumps({"temp_c": 18}))
        return format(root.get_span_context().trace_id, "032x")


@pytest.mark.parametrize("batch", [False, True], ids=["span-by-span", "batched-gzip"])
def test_sdk_spans_appear_as_a_trace_with_the_right_tree(stack, api, token, batch):
    provider, tracer = tracer_for(stack, token, batch=batch)
    try:
        otel_trace_id = run_weather_agent(tracer)
        assert provider.force_flush(10_000)
    finally:
        provider.shutdown()

    traces = api.get("/api/traces", params={"otel_trace_id": otel_trace_id}).json()["traces"]
    assert len(traces) == 1, traces
    trace = traces[0]
    assert (trace["source"], trace["name"], trace["status"]) == ("otlp", "weather", "running")
    steps = api.get(f"/api/traces/{trace['id']}/steps", params={"after": 0}).json()["steps"]
    by_span = {s["span_id"]: s for s in steps}
    tree = sorted(
        (
            s["kind"],
            s["name"],
            by_span[s["parent_span_id"]]["name"] if s["parent_span_id"] else None,
            s["status"],
        )
        for s in steps
    )
    assert tree == [
        ("agent", "weather", None, "ok"),
        ("model_call", "small-model", "weather", "ok"),
        ("tool_call", "get_weather", "weather", "error"),
        ("tool_call", "get_weather", "weather", "ok"),
    ]
    # The tree the debugger draws comes from the saved parent links.
    root_seq = next(s["seq"] for s in steps if s["kind"] == "agent")
    assert {s["parent_seq"] for s in steps if s["kind"] != "agent"} == {root_seq}
    paris = next(s for s in steps if s["tool_call_id"] == "call-Paris")
    assert (paris["input"], paris["output"]) == ({"city": "Paris"}, {"temp_c": 18})
    oslo = next(s for s in steps if s["tool_call_id"] == "call-Oslo")
    assert oslo["error"] == "station offline"
    model = next(s for s in steps if s["kind"] == "model_call")
    assert model["attributes"]["gen_ai.provider.name"] == "openai"
    assert (trace["prompt_tokens"], trace["completion_tokens"]) == (30, 9)
