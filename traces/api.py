"""The traces part of the JSON API: list traces (the trace list page's filters, keyset
pagination), read one, read its steps after a cursor, cancel its run."""

from __future__ import annotations

import uuid
from typing import Any

from django.http import HttpRequest
from ninja import Field, Query, Router, Schema, Status
from pydantic import ConfigDict

from tooltrail.api import ERRORS, ApiError, ErrorOut, require_perm
from tooltrail.params import MAX_CURSOR, int_param

from .models import Trace
from .selectors import (
    FilterError,
    TraceFilters,
    steps_after,
    trace_filters_parse,
    trace_get_for_user,
    trace_page,
)
from .serializers import step_payload, trace_payload
from .services import TraceError, trace_cancel

router = Router(tags=["traces"])
STEP_PAGE = 500
TRACE_PAGE = 200
TRACE_PAGE_DEFAULT = 50
TRACE_PAGE_ALIAS_DEFAULT = 100


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


def _trace_for(request: HttpRequest, trace_id: uuid.UUID) -> Trace:
    try:
        return trace_get_for_user(user=request.user, trace_id=trace_id)
    except Trace.DoesNotExist:
        raise ApiError("no such trace", 404) from None


class TraceListOut(Schema):
    items: list[TraceOut]
    next: str | None = Field(
        description="Pass back as `before` (or `cursor`) for the next, older page; null at the end."
    )
    prev: str | None = Field(
        None, description="Pass back as `after` for the previous, newer page; null on the first."
    )
    traces: list[TraceOut] | None = Field(
        None,
        description="The same list as `items`, on `GET /api/traces` only (deprecated: its "
        "answer before it joined the documented API).",
    )


def _filter(description: str) -> Any:
    return Field(None, description=description)


class TraceListQuery(Schema):
    """The trace list page's filters (``traces.selectors.TraceFilters``), and the page."""

    status: str | None = _filter("queued, running, succeeded, failed or cancelled")
    agent: str | None = _filter("the agent's slug")
    endpoint: str | None = _filter("the model endpoint the run recorded")
    tool: str | None = _filter("runs that called this tool")
    error_kind: str | None = _filter("runs with a failed step of this name, e.g. tool_error")
    tag: str | None = _filter("runs with this tag")
    q: str | None = _filter("words in the input, or in a step's input, output or error")
    otel_trace_id: str | None = _filter("the OpenTelemetry trace id (hex) of an ingested run")
    annotation: str | None = _filter(
        "labels on the run's steps: any (labelled), none (unlabelled), good (good verdicts "
        "and no bad one), bad (at least one bad verdict), has_correction (a corrected call)"
    )
    since: str | None = _filter("created at or after: a date (YYYY-MM-DD) or ISO 8601 date-time")
    until: str | None = _filter("created before: a date (the whole day) or ISO 8601 date-time")
    min_duration: str | None = _filter("seconds, at least")
    max_duration: str | None = _filter("seconds, at most")
    min_tokens: str | None = _filter("prompt + completion tokens, at least (a whole number)")
    max_tokens: str | None = _filter("prompt + completion tokens, at most (a whole number)")
    before: str | None = _filter("a page's `next`: the older traces after it")
    cursor: str | None = _filter("the same as `before`")
    after: str | None = _filter("a page's `prev`: the newer traces before it")
    limit: int | None = Field(
        None,
        description=f"1 to {TRACE_PAGE} (default {TRACE_PAGE_DEFAULT}; "
        f"{TRACE_PAGE_ALIAS_DEFAULT} on /api/traces/list)",
    )


def _trace_list(request: HttpRequest, query: TraceListQuery, *, default_limit: int) -> dict:
    limit = default_limit if query.limit is None else query.limit
    if not 1 <= limit <= TRACE_PAGE:
        raise ApiError(f"limit must be between 1 and {TRACE_PAGE}")
    try:
        filters = trace_filters_parse(query.model_dump(include=set(TraceFilters.FIELDS)))
    except FilterError as exc:
        raise ApiError(str(exc)) from exc
    try:
        page = trace_page(
            filters=filters,
            before=query.before or query.cursor or "",
            after=query.after or "",
            limit=limit,
        )
    except FilterError as exc:  # the filters are read: only a cursor is left to be wrong
        raise ApiError(str(exc), 400, "bad_cursor") from exc
    return {
        "items": [trace_payload(t) for t in page.traces],
        "next": page.next_cursor or None,
        "prev": page.prev_cursor or None,
    }


_LIST_RESPONSES = {200: TraceListOut, 400: ErrorOut, **ERRORS}


@router.get("/traces", response=_LIST_RESPONSES, summary="List traces", operation_id="traces_list")
def list_traces(request: HttpRequest, query: Query[TraceListQuery]):
    """Newest first, with the trace list page's filters, ``limit`` at a time, by keyset:
    pass ``next`` back as ``before`` for older traces, ``prev`` as ``after`` for newer
    ones (pages stay stable while new runs arrive)."""
    page = _trace_list(request, query, default_limit=TRACE_PAGE_DEFAULT)
    return {**page, "traces": page["items"]}


@router.get(
    "/traces/list",
    response=_LIST_RESPONSES,
    summary="List traces (the same as GET /api/traces)",
    operation_id="traces_list_alias",
    exclude_unset=True,
    deprecated=True,
)
def list_traces_alias(request: HttpRequest, query: Query[TraceListQuery]):
    """``GET /api/traces`` under its first name: the same filters and pages, ``limit``
    100 by default, and no ``traces`` copy of ``items``."""
    return _trace_list(request, query, default_limit=TRACE_PAGE_ALIAS_DEFAULT)


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
