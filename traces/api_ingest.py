"""Traces in and out: OTLP/HTTP ingest (``POST /v1/traces``), the trace list API,
export and import. Thin views: parsing in ``traces.ingest``, writes in
``traces.services``."""

from __future__ import annotations

import json
import logging

from django.conf import settings
from django.db import DatabaseError, DataError, IntegrityError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from google.rpc import status_pb2

from tooltrail.api import ApiError, api_view, bearer_token, json_body
from tooltrail.services import api_token_authenticate

from .ingest.decode import PROTOBUF, IngestError, decompress, media_type, parse, response_body
from .ingest.mapping import request_to_records
from .models import Trace
from .selectors import trace_get_for_user, traces_api_list
from .services import TraceError, spans_ingest, trace_import, trace_payload
from .transfer import trace_export_json, trace_export_otlp

logger = logging.getLogger(__name__)
INGEST_PERMISSION = "traces.ingest_traces"
RETRY_AFTER_SECONDS = 2


def _otlp_error(message: str, *, status: int, kind: str, retry_after: int | None = None):
    """An OTLP error answer: a google.rpc.Status in the request's encoding."""
    if kind == PROTOBUF:
        body = status_pb2.Status(code=status, message=message).SerializeToString()
        response = HttpResponse(body, status=status, content_type=PROTOBUF)
    else:
        response = JsonResponse({"code": status, "message": message}, status=status)
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    return response


@csrf_exempt
def otlp_traces_view(request: HttpRequest) -> HttpResponse:
    """``POST /v1/traces``: OTLP/HTTP protobuf or JSON, gzip or not, with a bearer token
    of a role allowed to send traces. 200 means every accepted span is saved;
    rejected spans are counted in ``partial_success``."""
    kind = (request.content_type or "").lower()
    if request.method != "POST":
        response = _otlp_error("use POST", status=405, kind=kind)
        response["Allow"] = "POST"
        return response
    user = api_token_authenticate(raw=bearer_token(request.headers))
    if user is None:
        return _otlp_error(
            "send a valid API token: Authorization: Bearer <token>", status=401, kind=kind
        )
    if not user.has_perm(INGEST_PERMISSION):
        return _otlp_error("your role may not send traces", status=403, kind=kind)
    limit = settings.TOOLTRAIL_OTLP_MAX_BYTES
    try:
        kind = media_type(request.content_type)
        try:
            length = int(request.headers.get("content-length") or 0)
        except ValueError:
            raise IngestError("Content-Length is not a number") from None
        if length > limit:
            raise IngestError(f"the body is over the {limit} byte limit", status=413)
        raw = request.read(limit + 1)
        if len(raw) > limit:
            raise IngestError(f"the body is over the {limit} byte limit", status=413)
        body = decompress(
            raw, encoding=request.headers.get("content-encoding", ""), max_bytes=limit
        )
        decoded = request_to_records(parse(body, kind=kind))
    except IngestError as exc:
        return _otlp_error(str(exc), status=exc.status, kind=kind)
    try:
        spans_ingest(records=decoded.records, user=user)
    except TraceError as exc:
        return _otlp_error(str(exc), status=400, kind=kind)
    except (DataError, IntegrityError) as exc:
        # A value the database cannot hold: resending would fail the same way.
        return _otlp_error(
            f"the spans hold a value the database refuses: {exc}", status=400, kind=kind
        )
    except (OperationalError, DatabaseError) as exc:
        # A locked or overloaded database: nothing was saved; the exporter retries.
        logger.warning("OTLP ingest refused for now: %s", exc)
        return _otlp_error(
            "the server is busy; retry later",
            status=503,
            kind=kind,
            retry_after=RETRY_AFTER_SECONDS,
        )
    message = "; ".join(decoded.problems)
    return HttpResponse(
        response_body(kind=kind, rejected=decoded.rejected, message=message),
        content_type=kind,
    )


class IngestBackpressure:
    """ASGI middleware: refuse ``POST /v1/traces`` with 503 + Retry-After while this
    process already has TOOLTRAIL_OTLP_MAX_PENDING ingest requests in hand.

    Django runs our synchronous views one at a time per process; without a limit a
    burst of exporters would queue unboundedly (memory, and timeouts that make them
    resend). Counted in the event loop, before the request body is read.
    """

    def __init__(self, app) -> None:
        self.app = app
        self.pending = 0

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope.get("path") != "/v1/traces":
            await self.app(scope, receive, send)
            return
        if self.pending >= settings.TOOLTRAIL_OTLP_MAX_PENDING:
            body = json.dumps(
                {"code": 503, "message": "too many trace uploads in progress; retry later"}
            ).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 503,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"retry-after", str(RETRY_AFTER_SECONDS).encode()),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        self.pending += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.pending -= 1


# --- the trace list API, export and import ---------------------------------------------


@api_view(("GET",))
def api_traces(request: HttpRequest) -> JsonResponse:
    """``GET /api/traces?otel_trace_id=<hex>``: newest first, at most ``limit`` (100)."""
    try:
        limit = min(max(int(request.GET.get("limit", 50)), 1), 100)
    except ValueError:
        raise ApiError("limit must be an integer") from None
    otel_trace_id = request.GET.get("otel_trace_id", "").strip().lower()
    traces = traces_api_list(user=request.user, otel_trace_id=otel_trace_id, limit=limit)
    return JsonResponse({"traces": [trace_payload(t) for t in traces]})


@api_view(("GET",))
def api_trace_export(request: HttpRequest, trace_id) -> JsonResponse:
    """``GET /api/traces/<id>/export?format=json|otlp``."""
    try:
        trace = trace_get_for_user(user=request.user, trace_id=trace_id)
    except Trace.DoesNotExist:
        raise ApiError("no such trace", status=404) from None
    fmt = request.GET.get("format", "json")
    if fmt not in ("json", "otlp"):
        raise ApiError("format must be json or otlp")
    data = trace_export_json(trace=trace) if fmt == "json" else trace_export_otlp(trace=trace)
    response = JsonResponse(data)
    response["Content-Disposition"] = f'attachment; filename="trace-{trace.id}.{fmt}.json"'
    return response


@api_view(("POST",), permission=INGEST_PERMISSION)
def api_trace_import(request: HttpRequest) -> JsonResponse:
    """``POST /api/traces/import`` with a Tooltrail trace export (format JSON)."""
    try:
        trace = trace_import(data=json_body(request), user=request.user)
    except TraceError as exc:
        raise ApiError(str(exc)) from exc
    return JsonResponse(trace_payload(trace), status=201)
