"""The traces part of the JSON API: list traces (filters, keyset pagination), read one,
read its steps after a cursor, cancel its run."""

from __future__ import annotations

import base64
import uuid
from datetime import datetime

from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import HttpRequest
from django.utils.dateparse import parse_datetime
from ninja import Query, Router, Schema, Status
from pydantic import ConfigDict

from tooltrail.api import ERRORS, ApiError, ErrorOut, require_perm
from tooltrail.params import MAX_CURSOR, int_param

from .models import Step, Trace
from .selectors import steps_after, trace_get_for_user
from .serializers import step_payload, trace_payload
from .services import TraceError, trace_cancel

router = Router(tags=["traces"])
STEP_PAGE = 500
TRACE_PAGE = 100


class TraceOut(Schema):
    # The payload is built by traces.services.trace_payload; a field added there is passed
    # on even before it is documented here.
    model_config = ConfigDict(extra="allow")

    id: str
    name: str
    agent_slug: str
    status: str
    input: str
    output: str
    error: str
    created_at: str | None
    started_at: str | None
    ended_at: str | None
    duration_seconds: float | None
    step_count: int
    prompt_tokens: int
    completion_tokens: int
    source: str = ""
    otel_trace_id: str = ""


class TracePage(Schema):
    items: list[TraceOut]
    next: str | None


class StepOut(Schema):
    model_config = ConfigDict(extra="allow")  # as TraceOut: step_payload is the source

    id: int
    trace_id: str
    seq: int
    # An integer for our runner's steps; whatever another source stored otherwise.
    parent_seq: object | None
    kind: str
    name: str
    status: str
    input: object | None
    output: object | None
    error: str
    tool_call_id: str
    started_at: str | None
    ended_at: str | None
    duration_ms: float | None
    prompt_tokens: int
    completion_tokens: int
    span_id: str = ""
    parent_span_id: str = ""
    attributes: object | None = None


class StepsOut(Schema):
    trace: TraceOut
    steps: list[StepOut]
    cursor: int
    more: bool


class TraceFilters(Schema):
    agent: str | None = None
    status: str | None = None
    tool: str | None = None
    since: str | None = None
    until: str | None = None
    cursor: str | None = None
    limit: int = TRACE_PAGE


def _trace_for(request: HttpRequest, trace_id: uuid.UUID) -> Trace:
    try:
        return trace_get_for_user(user=request.user, trace_id=trace_id)
    except Trace.DoesNotExist:
        raise ApiError("no such trace", 404) from None


def _moment(name: str, value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = parse_datetime(value.replace("Z", "+00:00")) if "T" in value else None
    if parsed is None:
        raise ApiError(f"{name} must be an ISO 8601 date-time, e.g. 2026-01-31T12:00:00Z")
    return parsed


def _cursor_encode(trace: Trace) -> str:
    raw = f"{trace.created_at.isoformat()}|{trace.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _cursor_decode(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, _, trace_id = raw.partition("|")
        moment = datetime.fromisoformat(at)
        return moment, uuid.UUID(trace_id)
    except ValueError:
        raise ApiError("cursor is not one this API gave out", 400, "bad_cursor") from None


def traces_filtered(filters: TraceFilters) -> QuerySet[Trace]:
    """Newest first; ``tool`` keeps the traces that called that tool."""
    if filters.status and filters.status not in Trace.Status.values:
        raise ApiError(f"status must be one of {', '.join(Trace.Status.values)}")
    qs = Trace.objects.all()
    if filters.agent:
        qs = qs.filter(agent_slug=filters.agent)
    if filters.status:
        qs = qs.filter(status=filters.status)
    if filters.tool:
        qs = qs.filter(
            Exists(
                Step.objects.filter(
                    trace_id=OuterRef("pk"), kind=Step.Kind.TOOL_CALL, name=filters.tool
                )
            )
        )
    since, until = _moment("since", filters.since), _moment("until", filters.until)
    if since:
        qs = qs.filter(created_at__gte=since)
    if until:
        qs = qs.filter(created_at__lt=until)
    return qs.order_by("-created_at", "-id")


@router.get(
    "/traces/list", response={200: TracePage, 400: ErrorOut, **ERRORS}, summary="List traces"
)
def list_traces(request: HttpRequest, filters: Query[TraceFilters]):
    """Newest first, ``limit`` (1-100) at a time. Pass ``next`` back as ``cursor`` for
    the following page (keyset pagination: stable while new runs arrive)."""
    if not 1 <= filters.limit <= TRACE_PAGE:
        raise ApiError(f"limit must be from 1 to {TRACE_PAGE}")
    qs = traces_filtered(filters)
    if filters.cursor:
        at, last_id = _cursor_decode(filters.cursor)
        qs = qs.filter(Q(created_at__lt=at) | Q(created_at=at, id__lt=last_id))
    page = list(qs[: filters.limit + 1])
    more = len(page) > filters.limit
    page = page[: filters.limit]
    return {
        "items": [trace_payload(t) for t in page],
        "next": _cursor_encode(page[-1]) if more else None,
    }


@router.get("/traces/{uuid:trace_id}", response={200: TraceOut, **ERRORS}, summary="Read a trace")
def get_trace(request: HttpRequest, trace_id: uuid.UUID):
    return trace_payload(_trace_for(request, trace_id))


_STEPS_PARAMS = [
    {
        "in": "query",
        "name": "after",
        "required": False,
        "schema": {"type": "integer", "minimum": 0, "default": 0},
        "description": "Return the steps with seq > after (the cursor).",
    },
    {
        "in": "query",
        "name": "limit",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": STEP_PAGE, "default": STEP_PAGE},
    },
]


@router.get(
    "/traces/{uuid:trace_id}/steps",
    response={200: StepsOut, 400: ErrorOut, **ERRORS},
    summary="Read the steps after a cursor",
    openapi_extra={"parameters": _STEPS_PARAMS},
)
def get_steps(request: HttpRequest, trace_id: uuid.UUID):
    """The steps after cursor ``after``, in order, at most 500 per call; ``cursor`` is the
    value to pass next time and ``more`` says whether to call again at once."""
    trace = _trace_for(request, trace_id)
    after = int_param(request.GET.get("after"), default=0)
    limit = int_param(request.GET.get("limit"), default=STEP_PAGE, lo=1)
    if after is None or limit is None:
        raise ApiError(f"after must be an integer from 0 to {MAX_CURSOR}, limit one from 1")
    limit = min(limit, STEP_PAGE)
    steps = steps_after(trace_id=trace.id, after=after, limit=limit)
    return {
        "trace": trace_payload(trace),
        "steps": [step_payload(s) for s in steps],
        "cursor": steps[-1].seq if steps else after,
        "more": len(steps) == limit,
    }


@router.post(
    "/traces/{uuid:trace_id}/cancel",
    response={202: TraceOut, 409: ErrorOut, **ERRORS},
    summary="Cancel a run",
)
def cancel_trace(request: HttpRequest, trace_id: uuid.UUID):
    """A queued run ends at once; a running one stops before its next step (the answer
    says ``running`` until it has)."""
    trace = _trace_for(request, trace_id)
    require_perm(request, "traces.cancel_trace")
    try:
        trace = trace_cancel(trace_id=trace.id)
    except TraceError as exc:
        raise ApiError(str(exc), 409) from exc
    return Status(202, trace_payload(trace))
