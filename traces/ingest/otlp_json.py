"""Spans written as OTLP/JSON (the encoding ``POST /v1/traces`` takes back).

Pure functions over plain data; ``traces.transfer`` feeds them a trace's steps.
"""

from __future__ import annotations

import json
from typing import Any


def value_json(value: Any) -> dict[str, Any]:
    """A Python value as an OTLP/JSON AnyValue (64-bit integers as strings, as OTLP/JSON
    writes them)."""
    if value is None:
        return {}
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, list | tuple):
        return {"arrayValue": {"values": [value_json(v) for v in value]}}
    if isinstance(value, dict):
        return {"kvlistValue": {"values": attributes_json(value)}}
    return {"stringValue": json.dumps(value, default=str)}


def attributes_json(attrs: dict[str, Any]) -> list[dict[str, Any]]:
    """Sorted by key: attribute order means nothing in OTLP, and PostgreSQL's jsonb does
    not keep it, so the same trace exports the same on every database."""
    return [{"key": key, "value": value_json(attrs[key])} for key in sorted(attrs)]


def span_json(
    *,
    trace_id: str,
    span_id: str,
    parent_span_id: str,
    name: str,
    kind: int,
    start_time_unix_nano: int,
    end_time_unix_nano: int,
    attributes: dict[str, Any],
    status: dict[str, Any] | None = None,
    events: list[dict[str, Any]] | None = None,
    links: list[dict[str, Any]] | None = None,
    trace_state: str = "",
    flags: int = 0,
    dropped: dict[str, int] | None = None,
) -> dict[str, Any]:
    span: dict[str, Any] = {
        "traceId": trace_id,
        "spanId": span_id,
        "name": name,
        "kind": kind,
        "startTimeUnixNano": str(start_time_unix_nano),
        "endTimeUnixNano": str(end_time_unix_nano),
        "attributes": attributes_json(attributes),
    }
    if parent_span_id:
        span["parentSpanId"] = parent_span_id
    if trace_state:
        span["traceState"] = trace_state
    if flags:
        span["flags"] = flags
    if status and (status.get("code") or status.get("message")):
        span["status"] = {k: v for k, v in status.items() if v}
    if events:
        span["events"] = [
            {
                "timeUnixNano": str(e.get("time_unix_nano", 0)),
                "name": e.get("name", ""),
                "attributes": attributes_json(e.get("attributes") or {}),
            }
            for e in events
        ]
    if links:
        span["links"] = [
            {
                "traceId": link["trace_id"],
                "spanId": link["span_id"],
                **({"traceState": link["trace_state"]} if link.get("trace_state") else {}),
                "attributes": attributes_json(link.get("attributes") or {}),
            }
            for link in links
        ]
    for key, count in (dropped or {}).items():
        if count:
            camel = "".join(w.capitalize() if i else w for i, w in enumerate(key.split("_")))
            span[camel] = count
    return span


def request_json(groups: list[tuple[dict, dict, list[dict]]]) -> dict[str, Any]:
    """An ExportTraceServiceRequest from ``(resource attributes, scope, spans)``
    groups; spans sharing a resource and scope go together."""
    resources: dict[str, dict] = {}
    for resource, scope, spans in groups:
        rkey = json.dumps(resource, sort_keys=True)
        entry = resources.setdefault(
            rkey, {"resource": {"attributes": attributes_json(resource)}, "scopeSpans": {}}
        )
        skey = json.dumps(scope, sort_keys=True)
        scope_json: dict[str, Any] = {
            k: v for k, v in (("name", scope.get("name")), ("version", scope.get("version"))) if v
        }
        if scope.get("attributes"):
            scope_json["attributes"] = attributes_json(scope["attributes"])
        entry["scopeSpans"].setdefault(skey, {"scope": scope_json, "spans": []})["spans"].extend(
            spans
        )
    return {
        "resourceSpans": [
            {"resource": r["resource"], "scopeSpans": list(r["scopeSpans"].values())}
            for r in resources.values()
        ]
    }
