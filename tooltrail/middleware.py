"""Login for every page: anonymous requests go to the login page (JSON 401 for the API).
Request bodies over the size limit are refused up front with 413 (JSON on the API)."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse
from django.template.loader import render_to_string

from .api import ApiError, authenticate, error_response

# Paths that must answer without a session: the login page itself, the health check
# (load balancers) and static files.
PUBLIC_PREFIXES = ("/accounts/login/", "/healthz", "/static/", "/favicon.ico")
# The API authenticates by bearer token in its views (tooltrail.api.api_view); here it
# only has to carry one, so a view that forgot the decorator still fails closed.
TOKEN_PREFIXES = ("/api/", "/v1/")


class LoginRequiredEverywhereMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated or request.path.startswith(PUBLIC_PREFIXES):
            return self.get_response(request)
        if request.path.startswith(TOKEN_PREFIXES):
            if request.headers.get("authorization", "").lower().startswith("bearer "):
                return self.get_response(request)
            return error_response(
                "authentication required: send Authorization: Bearer <token>", 401
            )
        if request.headers.get("accept", "").startswith("application/json"):
            return error_response("authentication required", 401)
        return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)


class RequestSizeLimitMiddleware:
    """Answer 413 to a body larger than ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (multipart
    uploads: ``TOOLTRAIL_MAX_UPLOAD_BYTES``) before anything reads it: a JSON error on
    ``/api/``, a page that says what happened elsewhere. Left to Django, the first read
    raises RequestDataTooBig: a bare "Bad Request (400)" and a traceback in the log."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        multipart = request.content_type == "multipart/form-data"
        limit = (
            settings.TOOLTRAIL_MAX_UPLOAD_BYTES
            if multipart
            else settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        )
        if request.path == "/v1/traces":
            # OTLP batches have their own limit (the ingest view checks it, before and
            # after gzip, and answers as OTLP asks).
            limit = settings.TOOLTRAIL_OTLP_MAX_BYTES
        if limit is not None and length > limit:
            message = f"the request body is {length} bytes; the limit is {limit} bytes"
            return refuse(request, message, 413)
        # A NUL character cannot be stored in PostgreSQL text: refused here, once, rather
        # than failing in whichever query meets it first.
        if "\x00" in request.path or _has_nul(request.GET):
            return refuse(request, "the address holds a NUL character", 400)
        if request.content_type == "application/x-www-form-urlencoded" and _has_nul(request.POST):
            return refuse(request, "the form holds a NUL character", 400)
        return self.get_response(request)


def _has_nul(data) -> bool:
    return any("\x00" in key or any("\x00" in v for v in values) for key, values in data.lists())


def refuse(request: HttpRequest, message: str, status: int) -> HttpResponse:
    """An error the caller can read: JSON on the API (or when JSON is asked for), else a
    page saying what happened."""
    if request.path.startswith(TOKEN_PREFIXES) or request.headers.get("accept", "").startswith(
        "application/json"
    ):
        return error_response(message, status)
    return HttpResponse(
        render_to_string("413.html" if status == 413 else "400.html", {"message": message}),
        status=status,
    )


class ApiJsonErrorsMiddleware:
    """Under ``/api/`` a client reads JSON: a bare "method not allowed" answer (from the
    URL routing, before any API code runs) becomes the API's error shape, after the same
    authentication as any API call (a bad token hears 401 first, as it always has)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            request.path.startswith(TOKEN_PREFIXES)
            and response.status_code == 405
            and not response.get("Content-Type", "").startswith("application/json")
        ):
            try:
                authenticate(request)
            except ApiError as exc:
                return error_response(str(exc), exc.status, exc.code)
            allowed = response.get("Allow", "")
            json_response = error_response(f"method {request.method} not allowed", 405)
            if allowed:
                json_response["Allow"] = allowed
            return json_response
        return response


# The largest id a database column holds (SQLite's INTEGER and PostgreSQL's bigint).
MAX_DATABASE_INT = 2**63 - 1


class IdsInRangeMiddleware:
    """A number in a URL (``<int:pk>``) beyond what any id column holds names nothing:
    404 before the view passes it to the database, which would raise (SQLite's
    OverflowError, PostgreSQL's "out of range") and answer 500."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view, args: tuple, kwargs: dict) -> None:
        for value in (*args, *kwargs.values()):
            if isinstance(value, int) and abs(value) > MAX_DATABASE_INT:
                raise Http404("no such id")
