"""Build OTLP export requests with the OpenTelemetry project's protobuf classes."""

from __future__ import annotations

import base64
import json
import os
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

T0 = 1_764_600_000_000_000_000  # nanoseconds


def new_trace_id() -> bytes:
    return os.urandom(16)


def new_span_id() -> bytes:
    return os.urandom(8)


def value(v: Any) -> AnyValue:
    if isinstance(v, bool):
        return AnyValue(bool_value=v)
    if isinstance(v, int):
        return AnyValue(int_value=v)
    if isinstance(v, float):
        return AnyValue(double_value=v)
    if isinstance(v, list):
        out = AnyValue()
        out.array_value.values.extend(value(x) for x in v)
        return out
    if isinstance(v, dict):
        out = AnyValue()
        out.kvlist_value.values.extend(KeyValue(key=k, value=value(x)) for k, x in v.items())
        return out
    return AnyValue(string_value=str(v))


def span(
    name: str,
    *,
    trace_id: bytes,
    span_id: bytes | None = None,
    parent: bytes = b"",
    attrs: dict[str, Any] | None = None,
    start: int = 0,
    duration: int = 1_000_000,
    error: str | None = None,
    events: list[tuple[str, dict]] | None = None,
) -> Span:
    s = Span(
        trace_id=trace_id,
        span_id=span_id or new_span_id(),
        parent_span_id=parent,
        name=name,
        kind=Span.SPAN_KIND_INTERNAL,
        start_time_unix_nano=T0 + start,
        end_time_unix_nano=T0 + start + duration,
    )
    s.attributes.extend(KeyValue(key=k, value=value(v)) for k, v in (attrs or {}).items())
    if error is not None:
        s.status.CopyFrom(Status(code=Status.STATUS_CODE_ERROR, message=error))
    for event_name, event_attrs in events or []:
        e = s.events.add(name=event_name, time_unix_nano=T0 + start)
        e.attributes.extend(KeyValue(key=k, value=value(v)) for k, v in event_attrs.items())
    return s


def request(*spans: Span, service: str = "my-agent") -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.append(KeyValue(key="service.name", value=value(service)))
    ss = rs.scope_spans.add()
    ss.scope.name = "tests"
    ss.scope.version = "1.0"
    ss.spans.extend(spans)
    return req


def genai_agent_spans(trace_id: bytes) -> list[Span]:
    """invoke_agent → chat (asks for a tool) → execute_tool, GenAI conventions."""
    agent, chat, tool = new_span_id(), new_span_id(), new_span_id()
    return [
        span(
            "invoke_agent Weather",
            trace_id=trace_id,
            span_id=agent,
            attrs={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "Weather"},
            duration=9_000_000,
        ),
        span(
            "chat gpt-4o",
            trace_id=trace_id,
            span_id=chat,
            parent=agent,
            start=1_000,
            attrs={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.input_tokens": 40,
                "gen_ai.usage.output_tokens": 12,
                "gen_ai.input.messages": json.dumps(
                    [{"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]}]
                ),
                "gen_ai.output.messages": json.dumps(
                    [
                        {
                            "role": "assistant",
                            "parts": [
                                {
                                    "type": "tool_call",
                                    "id": "call_1",
                                    "name": "get_weather",
                                    "arguments": {"city": "Paris"},
                                }
                            ],
                            "finish_reason": "tool_call",
                        }
                    ]
                ),
                "custom.flag": True,
            },
        ),
        span(
            "execute_tool get_weather",
            trace_id=trace_id,
            span_id=tool,
            parent=agent,
            start=2_000,
            attrs={
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": "get_weather",
                "gen_ai.tool.call.id": "call_1",
                "gen_ai.tool.call.arguments": '{"city": "Paris"}',
                "gen_ai.tool.call.result": '{"temp_c": 18}',
            },
        ),
    ]


def to_otlp_json(req: ExportTraceServiceRequest) -> dict:
    """The request in OTLP/JSON: protobuf's JSON mapping with hex ids."""
    data = json_format.MessageToDict(req)
    for rs in data.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for s in ss.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in s:
                        s[key] = base64.b64decode(s[key]).hex()
    return data
