"""Login for every page: anonymous requests go to the login page (JSON 401 for the API)."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, JsonResponse

# Paths that must answer without a session: the login page itself, the health check
# (load balancers) and static files.
PUBLIC_PREFIXES = ("/accounts/login/", "/healthz", "/static/")
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
            return JsonResponse(
                {"error": "authentication required: send Authorization: Bearer <token>"}, status=401
            )
        if request.headers.get("accept", "").startswith("application/json"):
            return JsonResponse({"error": "authentication required"}, status=401)
        return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
