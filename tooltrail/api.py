"""JSON API plumbing shared by every endpoint: bearer-token (or session + CSRF)
authentication and one error shape, ``{"error": "<message>", "code": "<code>"}``.

The documented API (django-ninja, ``tooltrail.api_root``) uses ``TokenOrSession`` and
``ApiError``; a plain Django view under ``/api/`` gets the same behaviour from
``api_view``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from ninja import Schema
from ninja.security import HttpBearer

from .services import api_token_authenticate

# The ``code`` for each status when a caller does not name one.
ERROR_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    422: "invalid",
    500: "server_error",
    503: "unavailable",
}
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


class ErrorOut(Schema):
    """Every error the API answers: a message for people and a code for programs."""

    error: str
    code: str


# The errors any authenticated endpoint may answer, for its documented responses.
ERRORS = {401: ErrorOut, 403: ErrorOut, 404: ErrorOut}


class ApiError(Exception):
    def __init__(self, message: str, status: int = 400, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or ERROR_CODES.get(status, "error")


def error_response(message: str, status: int, code: str | None = None) -> JsonResponse:
    return JsonResponse(
        {"error": message, "code": code or ERROR_CODES.get(status, "error")}, status=status
    )


def bearer_token(headers) -> str:
    value = headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def authenticate(request: HttpRequest):
    """The caller: the user of an ``Authorization: Bearer`` token, else the session's
    user, who must pass the CSRF check to change anything. Raises ApiError (401/403)."""
    token = bearer_token(request.headers)
    if token:
        user = api_token_authenticate(raw=token)
        if user is None:
            raise ApiError("invalid or revoked API token", 401, "invalid_token")
        request.user = user
        return user
    if not request.user.is_authenticated:
        raise ApiError("authentication required: send Authorization: Bearer <token>", 401)
    if request.method not in SAFE_METHODS:
        from django.middleware.csrf import CsrfViewMiddleware

        if CsrfViewMiddleware(lambda r: None).process_view(request, None, (), {}) is not None:
            raise ApiError("CSRF check failed", 403, "csrf_failed")
    return request.user


class TokenOrSession(HttpBearer):
    """django-ninja auth: documented as a bearer token; a signed-in browser session (with
    its CSRF token for writes) works too."""

    def __call__(self, request: HttpRequest):
        return authenticate(request)

    def authenticate(self, request: HttpRequest, token: str):  # pragma: no cover - unused
        return authenticate(request)


def require_perm(request: HttpRequest, permission: str) -> None:
    if not request.user.has_perm(permission):
        raise ApiError("your role does not allow this", 403)


def api_view(methods: tuple[str, ...] = ("GET",), permission: str | None = None) -> Callable:
    """For a plain Django view under ``/api/``: authenticate as the documented API does,
    check the method and permission, and turn ApiError and Http404 into JSON errors."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @csrf_exempt
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                authenticate(request)
                if request.method not in methods:
                    raise ApiError(f"method {request.method} not allowed", 405)
                if permission:
                    require_perm(request, permission)
                return view(request, *args, **kwargs)
            except ApiError as exc:
                return error_response(str(exc), exc.status, exc.code)
            except Http404 as exc:
                # An API client reads JSON, never Django's HTML "not found" page.
                return error_response(str(exc) or "not found", 404)

        return wrapper

    return decorator


def json_body(request: HttpRequest) -> dict[str, Any]:
    try:
        data = json.loads(request.body or b"{}")
    except RequestDataTooBig as exc:
        raise ApiError(f"the request body is too large: {exc}", status=413) from exc
    except RecursionError as exc:
        raise ApiError("the request body is not valid JSON: nested too deeply") from exc
    except ValueError as exc:
        raise ApiError(f"the request body is not valid JSON: {str(exc)[:200]}") from exc
    if not isinstance(data, dict):
        raise ApiError("the request body must be a JSON object")
    if b"\\u0000" in request.body:
        # Not storable in PostgreSQL text: refused once here, not deep in some query.
        raise ApiError("the request body holds a NUL character (\\u0000)")
    return data
