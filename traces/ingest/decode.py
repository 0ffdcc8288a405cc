"""Decode an OTLP/HTTP trace export request (protobuf or JSON, optionally gzip).

Uses the OpenTelemetry project's generated protobuf classes; OTLP/JSON differs from
protobuf's canonical JSON mapping only in its ids (hex, not base64), which are
rewritten before ``json_format`` parses the body.
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_ID_KEYS = {"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"}


class IngestError(Exception):
    """A request OTLP tells us to refuse, with the HTTP status it gets."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def media_type(content_type: str) -> str:
    """``application/json; charset=utf-8`` → ``application/json``; 415 for anything but
    the two OTLP/HTTP encodings."""
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind in (PROTOBUF, JSON):
        return kind
    raise IngestError(
        f"unsupported content type {kind or '(none)'!r}: send {PROTOBUF} or {JSON}", status=415
    )


def decompress(body: bytes, *, encoding: str, max_bytes: int) -> bytes:
    """Undo ``Content-Encoding`` (gzip, deflate or none), never inflating past
    ``max_bytes`` (413): a small gzip body may expand a thousandfold."""
    encoding = (encoding or "identity").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "deflate"):
        raise IngestError(f"unsupported content encoding {encoding!r}: use gzip", status=415)
    wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise IngestError(f"the body is not valid {encoding}: {exc}") from exc
    if len(out) > max_bytes or inflater.unconsumed_tail:
        raise IngestError(f"the body inflates to more than the {max_bytes} byte limit", status=413)
    if not inflater.eof:
        raise IngestError(f"the {encoding} body is truncated")
    return out


def _hex_ids_to_base64(node: Any) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key in _ID_KEYS and isinstance(value, str):
                try:
                    value = base64.b64encode(bytes.fromhex(value)).decode()
                except ValueError:
                    raise IngestError(f"{key} {value!r} is not hex") from None
            out[key] = _hex_ids_to_base64(value)
        return out
    if isinstance(node, list):
        return [_hex_ids_to_base64(v) for v in node]
    return node


def parse(body: bytes, *, kind: str) -> ExportTraceServiceRequest:
    """The export request in ``body`` (already decompressed); 400 with the parser's
    reason when it is not one."""
    request = ExportTraceServiceRequest()
    if kind == PROTOBUF:
        try:
            request.ParseFromString(body)
        except DecodeError as exc:
            raise IngestError(f"the body is not an OTLP ExportTraceServiceRequest: {exc}") from exc
        return request
    try:
        data = json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise IngestError(f"the body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise IngestError("the body must be a JSON object (an ExportTraceServiceRequest)")
    try:
        # Receivers must ignore fields they do not know (OTLP spec, forward compatibility).
        json_format.ParseDict(_hex_ids_to_base64(data), request, ignore_unknown_fields=True)
    except (json_format.ParseError, binascii.Error, TypeError, ValueError, RecursionError) as exc:
        raise IngestError(f"the body is not an OTLP ExportTraceServiceRequest: {exc}") from exc
    return request


def response_body(*, kind: str, rejected: int = 0, message: str = "") -> bytes:
    """An ExportTraceServiceResponse in the request's encoding; ``partial_success`` is
    set only when something was rejected or there is a warning, as OTLP asks."""
    response = ExportTraceServiceResponse()
    if rejected or message:
        response.partial_success.rejected_spans = rejected
        response.partial_success.error_message = message
    if kind == PROTOBUF:
        return response.SerializeToString()
    return json.dumps(json_format.MessageToDict(response)).encode()
