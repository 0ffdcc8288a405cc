"""JSON API plumbing: bearer-token (or session) authentication and JSON errors."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from .services import api_token_authenticate


class ApiError(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def bearer_token(headers) -> str:
    value = headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def api_view(methods: tuple[str, ...] = ("GET",), permission: str | None = None) -> Callable:
    """Authenticate by ``Authorization: Bearer`` (or an existing session), check the
    method and permission, and turn ApiError and Http404 into JSON error responses."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @csrf_exempt
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            token = bearer_token(request.headers)
            if token:
                user = api_token_authenticate(raw=token)
                if user is None:
                    return JsonResponse({"error": "invalid or revoked API token"}, status=401)
                request.user = user
            elif not request.user.is_authenticated:
                return JsonResponse(
                    {"error": "authentication required: send Authorization: Bearer <token>"},
                    status=401,
                )
            elif request.method not in ("GET", "HEAD", "OPTIONS"):
                # A session (cookie) caller must pass the CSRF check; token callers need not.
                from django.middleware.csrf import CsrfViewMiddleware

                reason = CsrfViewMiddleware(lambda r: None).process_view(request, None, (), {})
                if reason is not None:
                    return JsonResponse({"error": "CSRF check failed"}, status=403)
            if request.method not in methods:
                return JsonResponse({"error": f"method {request.method} not allowed"}, status=405)
            if permission and not request.user.has_perm(permission):
                return JsonResponse({"error": "your role does not allow this"}, status=403)
            try:
                return view(request, *args, **kwargs)
            except ApiError as exc:
                return JsonResponse({"error": str(exc)}, status=exc.status)
            except Http404 as exc:
                # An API client reads JSON, never Django's HTML "not found" page.
                return JsonResponse({"error": str(exc) or "not found"}, status=404)

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
