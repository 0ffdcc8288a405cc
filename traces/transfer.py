"""A trace written out, and read back: our own JSON format and OTLP/JSON.

``trace_export_json`` writes the documented Tooltrail format (docs/ingest.md),
which ``traces.services.trace_import`` reads back exactly. ``trace_export_otlp``
writes OTLP/JSON, which ``POST /v1/traces`` (or ``import_trace --format otlp``)
takes back: spans that came in over OTLP go out as they came (kept attributes,
nanosecond times, events, links, status, resource and scope); steps of our own
runs are written with GenAI attributes plus ``tooltrail.step.*`` ones that say
exactly what the step was.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from .ingest.mapping import TT
from .ingest.otlp_json import request_json, span_json
from .models import Step, Trace

FORMAT = "tooltrail.trace"
VERSION = 1
TRACE_FIELDS = (
    "name",
    "agent_slug",
    "source",
    "status",
    "input",
    "output",
    "error",
    "metadata",
    "step_count",
    "prompt_tokens",
    "completion_tokens",
    "otel_trace_id",
)
TRACE_TIMES = ("created_at", "started_at", "ended_at")
STEP_FIELDS = (
    "seq",
    "kind",
    "name",
    "input",
    "output",
    "error",
    "status",
    "tool_call_id",
    "span_id",
    "parent_span_id",
    "prompt_tokens",
    "completion_tokens",
    "metadata",
)
STEP_TIMES = ("started_at", "ended_at")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def trace_export_json(*, trace: Trace) -> dict[str, Any]:
    """The whole trace in the Tooltrail trace format, version 1."""
    steps = Step.objects.filter(trace_id=trace.id).select_related("parent").order_by("seq")
    return {
        "format": FORMAT,
        "version": VERSION,
        "trace": {
            "id": str(trace.id),
            **{f: getattr(trace, f) for f in TRACE_FIELDS},
            **{f: _iso(getattr(trace, f)) for f in TRACE_TIMES},
        },
        "steps": [
            {
                **{f: getattr(s, f) for f in STEP_FIELDS},
                "parent_seq": s.parent.seq if s.parent else None,
                **{f: _iso(getattr(s, f)) for f in STEP_TIMES},
            }
            for s in steps.iterator(chunk_size=1000)
        ],
    }


def _nanos(value: datetime | None) -> int:
    return int(round(value.timestamp() * 1e6)) * 1000 if value else 0


_GENAI_OPERATION = {
    Step.Kind.MODEL_CALL: "chat",
    Step.Kind.TOOL_CALL: "execute_tool",
    Step.Kind.TOOL_RESULT: "execute_tool",
    Step.Kind.AGENT: "invoke_agent",
}


def _synthesized_attributes(step: Step) -> dict[str, Any]:
    """Attributes for a step that did not come from OTLP (our runner, an import)."""
    attrs: dict[str, Any] = {TT + "kind": step.kind, TT + "name": step.name}
    if step.kind in _GENAI_OPERATION:
        attrs["gen_ai.operation.name"] = _GENAI_OPERATION[step.kind]
    if step.kind in (Step.Kind.TOOL_CALL, Step.Kind.TOOL_RESULT):
        attrs["gen_ai.tool.name"] = step.name
    if step.tool_call_id:
        attrs[TT + "tool_call_id"] = step.tool_call_id
        attrs["gen_ai.tool.call.id"] = step.tool_call_id
    if step.prompt_tokens or step.completion_tokens:
        attrs["gen_ai.usage.input_tokens"] = step.prompt_tokens
        attrs["gen_ai.usage.output_tokens"] = step.completion_tokens
    for key, value in (("input", step.input), ("output", step.output)):
        if value is not None:
            attrs[TT + key] = json.dumps(value)
    return attrs


def trace_export_otlp(*, trace: Trace) -> dict[str, Any]:
    """The trace as one OTLP/JSON ExportTraceServiceRequest."""
    trace_id = trace.otel_trace_id or trace.id.hex
    steps = Step.objects.filter(trace_id=trace.id).select_related("parent").order_by("seq")
    groups = []
    for step in steps.iterator(chunk_size=1000):
        otel = step.metadata.get("otel")
        span_id = step.span_id or f"{step.seq:016x}"
        parent = step.parent_span_id or (
            (step.parent.span_id or f"{step.parent.seq:016x}") if step.parent else ""
        )
        if otel:
            span = span_json(
                trace_id=trace_id,
                span_id=span_id,
                parent_span_id=parent,
                name=step.metadata.get("span_name", step.name),
                kind=otel.get("span_kind", 0),
                start_time_unix_nano=otel.get("start_time_unix_nano", _nanos(step.started_at)),
                end_time_unix_nano=otel.get("end_time_unix_nano", _nanos(step.ended_at)),
                attributes=step.metadata.get("attributes", {}),
                status=otel.get("status"),
                events=otel.get("events"),
                links=otel.get("links"),
                trace_state=otel.get("trace_state", ""),
                flags=otel.get("flags", 0),
                dropped={
                    k: otel.get(k, 0)
                    for k in (
                        "dropped_attributes_count",
                        "dropped_events_count",
                        "dropped_links_count",
                    )
                },
            )
            groups.append((otel.get("resource", {}), otel.get("scope", {}), [span]))
            continue
        span = span_json(
            trace_id=trace_id,
            span_id=span_id,
            parent_span_id=parent,
            name=step.name or step.kind,
            kind=1,  # SPAN_KIND_INTERNAL
            start_time_unix_nano=_nanos(step.started_at),
            end_time_unix_nano=_nanos(step.ended_at),
            attributes=_synthesized_attributes(step),
            status={"code": 2, "message": step.error} if step.error else None,
        )
        resource = {
            "service.name": trace.agent_slug or "tooltrail",
            "tooltrail.trace.id": str(trace.id),
        }
        groups.append((resource, {"name": "tooltrail"}, [span]))
    return request_json(groups)
