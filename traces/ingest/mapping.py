"""OTLP spans → step records: the GenAI semantic conventions and OpenInference.

One span is one step. The kind comes from ``gen_ai.operation.name`` (chat /
execute_tool / invoke_agent …), else ``openinference.span.kind`` (LLM / TOOL /
AGENT / CHAIN / RETRIEVER …), else a plain ``span``. Tool arguments and results,
input and output messages, token usage, provider and model are lifted into the
step's fields; every attribute is also kept as it came in ``metadata["attributes"]``,
and everything else OTLP says about the span (kind, nanosecond times, events, links,
status, resource, scope) in ``metadata["otel"]``, so the span can be written back out
unchanged (``traces.ingest.otlp_json``).
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

# Kinds are the values of traces.models.Step.Kind; repeated here so that this module
# stays free of Django (pure, and fast to test).
MODEL_CALL, TOOL_CALL, AGENT, CHAIN, RETRIEVER, SPAN = (
    "model_call",
    "tool_call",
    "agent",
    "chain",
    "retriever",
    "span",
)
KNOWN_KINDS = {
    MODEL_CALL,
    TOOL_CALL,
    "tool_result",
    "error",
    "final",
    AGENT,
    CHAIN,
    RETRIEVER,
    SPAN,
}

GENAI_OPERATIONS = {
    "chat": MODEL_CALL,
    "text_completion": MODEL_CALL,
    "generate_content": MODEL_CALL,
    "execute_tool": TOOL_CALL,
    "invoke_agent": AGENT,
    "create_agent": AGENT,
    "embeddings": RETRIEVER,
}
OPENINFERENCE_KINDS = {
    "LLM": MODEL_CALL,
    "TOOL": TOOL_CALL,
    "AGENT": AGENT,
    "CHAIN": CHAIN,
    "RETRIEVER": RETRIEVER,
    "EMBEDDING": RETRIEVER,
    "RERANKER": RETRIEVER,
}
# Our own attributes (written by the OTLP export of runner traces and by the SDK):
# they say exactly what the step was, so they win over the conventions.
TT = "tooltrail.step."


@dataclass
class StepRecord:
    """One span as a step, ready for ``traces.services.steps_record_bulk``."""

    otel_trace_id: str
    span_id: str
    parent_span_id: str
    kind: str
    name: str
    started_at: datetime | None
    ended_at: datetime | None
    input: Any = None
    output: Any = None
    error: str = ""
    tool_call_id: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)
    service_name: str = ""


@dataclass
class Decoded:
    records: list[StepRecord]
    rejected: int = 0
    problems: list[str] = field(default_factory=list)


# --- values --------------------------------------------------------------------------


def clean(text: str) -> str:
    """Text every database stores: no NUL (PostgreSQL refuses it in text and jsonb)
    and no lone surrogates (OTLP/JSON may carry ``\\ud800``)."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def any_value(value: AnyValue) -> Any:
    """An OTLP AnyValue as plain JSON-able Python (bytes as base64 text)."""
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "string_value":
        return clean(value.string_value)
    if which == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return attributes(value.kvlist_value.values)
    if which == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    if which == "double_value" and not math.isfinite(value.double_value):
        return str(value.double_value)  # JSON has no NaN or infinity
    return getattr(value, which)


def attributes(kvs) -> dict[str, Any]:
    return {clean(kv.key): any_value(kv.value) for kv in kvs}


def _time(nanos: int) -> datetime | None:
    return datetime.fromtimestamp(nanos / 1e9, tz=UTC) if nanos else None


def _json_or_text(value: Any) -> Any:
    """Arguments and results usually come as JSON text (GenAI conventions serialize
    them): decode it when it is, numbers included."""
    if isinstance(value, str):
        text = value.strip()
        if (
            text[:1] in ("{", "[", '"', "-")
            or text[:1].isdigit()
            or text in ("true", "false", "null")
        ):
            try:
                return json.loads(text)
            except ValueError:
                return value
    return value


def _int(value: Any) -> int:
    """A token count as the database keeps it (0 … 2**31 - 1)."""
    try:
        return min(max(0, int(value)), 2**31 - 1)
    except (TypeError, ValueError, OverflowError):
        return 0


def _first(attrs: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if attrs.get(key) not in (None, ""):
            return attrs[key]
    return None


def unflatten(attrs: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    """OpenInference (and older GenAI) flattened lists:
    ``llm.input_messages.0.message.role`` → ``[{"message.role": …}]``, in index order."""
    items: dict[int, dict[str, Any]] = {}
    for key, value in attrs.items():
        if not key.startswith(prefix):
            continue
        index, _, rest = key[len(prefix) :].partition(".")
        if index.isdigit() and rest:
            items.setdefault(int(index), {})[rest] = value
    return [items[i] for i in sorted(items)]


# --- messages ------------------------------------------------------------------------


def _genai_message(message: Any) -> dict[str, Any] | None:
    """A GenAI-convention message (``role`` + ``parts``, or older ``content``) as our
    OpenAI-style message: role, content text, tool_calls, tool_call_id."""
    if not isinstance(message, dict):
        return None
    out: dict[str, Any] = {"role": message.get("role") or "user"}
    texts, calls = [], []
    for part in message.get("parts") or []:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "text":
            texts.append(str(part.get("content", "")))
        elif kind == "tool_call":
            args = part.get("arguments")
            calls.append(
                {
                    "id": part.get("id") or "",
                    "name": part.get("name") or "",
                    "arguments": args if isinstance(args, str) else json.dumps(args),
                }
            )
        elif kind == "tool_call_response":
            out["tool_call_id"] = part.get("id") or ""
            response = part.get("response")
            texts.append(response if isinstance(response, str) else json.dumps(response))
    if "content" in message and not texts:
        content = message["content"]
        texts.append(content if isinstance(content, str) else json.dumps(content))
    out["content"] = "".join(texts)
    if calls or message.get("tool_calls"):
        out["tool_calls"] = calls or message["tool_calls"]
    if message.get("finish_reason"):
        out["finish_reason"] = message["finish_reason"]
    return out


def _genai_messages(value: Any) -> list[dict[str, Any]] | None:
    value = _json_or_text(value)
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        return None
    return [m for m in (_genai_message(v) for v in value) if m is not None]


def _openinference_messages(attrs: dict[str, Any], prefix: str) -> list[dict[str, Any]] | None:
    items = unflatten(attrs, prefix)
    if not items:
        return None
    messages = []
    for item in items:
        content = item.get("message.content")
        if content is None:
            # Multimodal messages: message.contents.N.message_content.text
            parts = unflatten(item, "message.contents.")
            content = "".join(str(p.get("message_content.text", "")) for p in parts)
        message: dict[str, Any] = {"role": item.get("message.role") or "user", "content": content}
        by_index: dict[int, dict[str, Any]] = {}
        for key in item:
            if not key.startswith("message.tool_calls."):
                continue
            index, _, rest = key[len("message.tool_calls.") :].partition(".")
            slot = {
                "tool_call.id": "id",
                "tool_call.function.name": "name",
                "tool_call.function.arguments": "arguments",
            }.get(rest)
            if index.isdigit() and slot:
                call = by_index.setdefault(int(index), {"id": "", "name": "", "arguments": ""})
                call[slot] = item[key]
        if by_index:
            message["tool_calls"] = [by_index[i] for i in sorted(by_index)]
        if item.get("message.tool_call_id"):
            message["tool_call_id"] = item["message.tool_call_id"]
        messages.append(message)
    return messages


def _legacy_messages(attrs: dict[str, Any], prefix: str) -> list[dict[str, Any]] | None:
    """``gen_ai.prompt.0.role`` / ``gen_ai.completion.0.content`` (OpenLLMetry)."""
    items = unflatten(attrs, prefix)
    if not items:
        return None
    return [{"role": i.get("role") or "user", "content": i.get("content") or ""} for i in items]


def _event_messages(span: Span) -> tuple[list[dict], list[dict]]:
    """Messages recorded as span events (``gen_ai.user.message``, ``gen_ai.choice``…)."""
    inputs, outputs = [], []
    for event in span.events:
        name = event.name
        attrs = attributes(event.attributes)
        if name.startswith("gen_ai.") and name.endswith(".message"):
            role = name[len("gen_ai.") : -len(".message")]
            content = attrs.get("content", "")
            inputs.append(
                {"role": attrs.get("role") or role, "content": _text(content)}
                | ({"tool_call_id": attrs["id"]} if attrs.get("id") else {})
            )
        elif name == "gen_ai.choice":
            message = _json_or_text(attrs.get("message")) or {}
            outputs.append(
                _genai_message(message)
                if isinstance(message, dict)
                else {"role": "assistant", "content": _text(message)}
            )
        elif name == "gen_ai.client.inference.operation.details":
            inputs.extend(_genai_messages(attrs.get("gen_ai.input.messages")) or [])
            outputs.extend(_genai_messages(attrs.get("gen_ai.output.messages")) or [])
    return inputs, outputs


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


# --- one span --------------------------------------------------------------------------


def step_kind(attrs: dict[str, Any]) -> str:
    ours = attrs.get(TT + "kind")
    if ours in KNOWN_KINDS:
        return ours
    operation = str(attrs.get("gen_ai.operation.name") or "").lower()
    if operation in GENAI_OPERATIONS:
        return GENAI_OPERATIONS[operation]
    openinference = str(attrs.get("openinference.span.kind") or "").upper()
    if openinference in OPENINFERENCE_KINDS:
        return OPENINFERENCE_KINDS[openinference]
    if attrs.get("gen_ai.tool.name") or attrs.get("tool.name"):
        return TOOL_CALL
    if attrs.get("gen_ai.request.model") or attrs.get("llm.model_name"):
        return MODEL_CALL
    return SPAN


def _model_io(span: Span, attrs: dict[str, Any]) -> tuple[Any, Any]:
    inputs = (
        _genai_messages(attrs.get("gen_ai.input.messages"))
        or _openinference_messages(attrs, "llm.input_messages.")
        or _legacy_messages(attrs, "gen_ai.prompt.")
    )
    outputs = (
        _genai_messages(attrs.get("gen_ai.output.messages"))
        or _openinference_messages(attrs, "llm.output_messages.")
        or _legacy_messages(attrs, "gen_ai.completion.")
    )
    if not inputs or not outputs:
        event_in, event_out = _event_messages(span)
        inputs, outputs = inputs or event_in, outputs or event_out
    system = _json_or_text(attrs.get("gen_ai.system_instructions"))
    if system and inputs is not None:
        text = system if isinstance(system, str) else json.dumps(system)
        inputs = [{"role": "system", "content": text}, *inputs]
    model_input: Any = {"messages": inputs} if inputs else _json_or_text(attrs.get("input.value"))
    model_output: Any = None
    if outputs:
        last = outputs[-1]
        model_output = {
            "content": last.get("content", ""),
            "tool_calls": [c for m in outputs for c in m.get("tool_calls") or []],
            "messages": outputs,
        }
    elif attrs.get("output.value") is not None:
        model_output = _json_or_text(attrs.get("output.value"))
    return model_input, model_output


def _tool_io(attrs: dict[str, Any]) -> tuple[Any, Any]:
    arguments = _first(attrs, "gen_ai.tool.call.arguments", "input.value", "tool.arguments")
    result = _first(attrs, "gen_ai.tool.call.result", "output.value", "tool.result")
    return _json_or_text(arguments), _json_or_text(result)


def _documents(attrs: dict[str, Any]) -> list[dict[str, Any]]:
    """OpenInference retrieved documents: ``retrieval.documents.N.document.{id,content,
    score,metadata}``."""
    return [
        {k[len("document.") :]: v for k, v in item.items() if k.startswith("document.")}
        for item in unflatten(attrs, "retrieval.documents.")
    ]


def _error(span: Span, attrs: dict[str, Any]) -> str:
    if span.status.code != Status.STATUS_CODE_ERROR:
        return ""
    if span.status.message:
        return clean(span.status.message)
    for event in span.events:
        if event.name == "exception":
            e = attributes(event.attributes)
            text = ": ".join(
                str(p) for p in (e.get("exception.type"), e.get("exception.message")) if p
            )
            if text:
                return text
    return str(attrs.get("error.type") or "error")


def _otel_meta(span: Span, resource: dict, scope: dict) -> dict[str, Any]:
    """What OTLP says about the span beyond its attributes, kept for a lossless export."""
    meta: dict[str, Any] = {
        "span_kind": span.kind,
        "start_time_unix_nano": span.start_time_unix_nano,
        "end_time_unix_nano": span.end_time_unix_nano,
        "status": {"code": span.status.code, "message": clean(span.status.message)},
        "resource": resource,
        "scope": scope,
    }
    if span.trace_state:
        meta["trace_state"] = clean(span.trace_state)
    if span.flags:
        meta["flags"] = span.flags
    if span.events:
        meta["events"] = [
            {
                "time_unix_nano": e.time_unix_nano,
                "name": clean(e.name),
                "attributes": attributes(e.attributes),
            }
            for e in span.events
        ]
    if span.links:
        meta["links"] = [
            {
                "trace_id": link.trace_id.hex(),
                "span_id": link.span_id.hex(),
                "trace_state": clean(link.trace_state),
                "attributes": attributes(link.attributes),
            }
            for link in span.links
        ]
    for name in ("dropped_attributes_count", "dropped_events_count", "dropped_links_count"):
        if getattr(span, name):
            meta[name] = getattr(span, name)
    return meta


def span_to_record(span: Span, *, resource: dict[str, Any], scope: dict[str, Any]) -> StepRecord:
    """One valid span (16-byte trace id, 8-byte span id) as a step record."""
    attrs = attributes(span.attributes)
    span_name = clean(span.name)
    kind = step_kind(attrs)
    provider = _first(attrs, "gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system")
    model = _first(attrs, "gen_ai.response.model", "gen_ai.request.model", "llm.model_name")
    tool_name = _first(attrs, "gen_ai.tool.name", "tool.name")
    if TT + "input" in attrs or TT + "output" in attrs:
        step_input = _json_or_text(attrs.get(TT + "input"))
        step_output = _json_or_text(attrs.get(TT + "output"))
    elif kind == MODEL_CALL:
        step_input, step_output = _model_io(span, attrs)
    elif kind == TOOL_CALL:
        step_input, step_output = _tool_io(attrs)
    else:
        step_input = _json_or_text(attrs.get("input.value"))
        step_output = _json_or_text(attrs.get("output.value"))
        documents = _documents(attrs)
        if kind == RETRIEVER and documents:
            step_output = {"documents": documents}
    if kind == TOOL_CALL:
        name = tool_name or span_name
    elif kind == MODEL_CALL:
        name = model or span_name
    elif kind == AGENT:
        name = _first(attrs, "gen_ai.agent.name", "agent.name") or span_name
    else:
        name = span_name
    name = attrs.get(TT + "name") or name
    meta: dict[str, Any] = {"attributes": attrs, "otel": _otel_meta(span, resource, scope)}
    if span_name != name:
        meta["span_name"] = span_name
    if provider:
        meta["provider"] = provider
    if model:
        meta["model"] = model
    prompt = _first(
        attrs, "gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt"
    )
    completion = _first(
        attrs,
        "gen_ai.usage.output_tokens",
        "gen_ai.usage.completion_tokens",
        "llm.token_count.completion",
    )
    return StepRecord(
        otel_trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_span_id=span.parent_span_id.hex(),
        kind=kind,
        name=clean(str(name)),
        started_at=_time(span.start_time_unix_nano),
        ended_at=_time(span.end_time_unix_nano),
        input=step_input,
        output=step_output,
        error=_error(span, attrs),
        tool_call_id=str(
            _first(attrs, TT + "tool_call_id", "gen_ai.tool.call.id", "tool_call.id") or ""
        ),
        prompt_tokens=_int(prompt),
        completion_tokens=_int(completion),
        metadata=meta,
        service_name=str(resource.get("service.name") or ""),
    )


def request_to_records(request: ExportTraceServiceRequest) -> Decoded:
    """Every span of an export request as a step record. A span without a valid trace
    id or span id is rejected (counted, with the first reasons) and the rest kept: OTLP
    partial success."""
    decoded = Decoded(records=[])
    for resource_spans in request.resource_spans:
        resource = attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            scope = {
                "name": clean(scope_spans.scope.name),
                "version": clean(scope_spans.scope.version),
            }
            if scope_spans.scope.attributes:
                scope["attributes"] = attributes(scope_spans.scope.attributes)
            for span in scope_spans.spans:
                problem = _span_problem(span)
                if problem:
                    decoded.rejected += 1
                    if len(decoded.problems) < 5:
                        decoded.problems.append(problem)
                    continue
                decoded.records.append(span_to_record(span, resource=resource, scope=scope))
    return decoded


def _span_problem(span: Span) -> str:
    label = f"span {span.name!r}"
    if len(span.trace_id) != 16 or not any(span.trace_id):
        return f"{label}: trace id must be 16 bytes, not all zero"
    if len(span.span_id) != 8 or not any(span.span_id):
        return f"{label}: span id must be 8 bytes, not all zero"
    if span.parent_span_id and len(span.parent_span_id) != 8:
        return f"{label}: parent span id must be 8 bytes"
    return ""
