"""Login for every page: anonymous requests go to the login page (JSON 401 for the API)."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse

from .api import ApiError, authenticate, error_response

# Paths that must answer without a session: the login page itself, the health check
# (load balancers) and static files.
PUBLIC_PREFIXES = ("/accounts/login/", "/healthz", "/static/", "/favicon.ico")
# The API authenticates by bearer token in its views (tooltrail.api.api_view); here it
# only has to carry one, so a view that forgot the decorator still fails closed.
TOKEN_PREFIXES = ("/api/",)


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
