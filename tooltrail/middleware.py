"""Login for every page: anonymous requests go to the login page (JSON 401 for the API)."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, JsonResponse

# Paths that must answer without a session: the login page itself, the health check
# (load balancers), static files, and the API, which authenticates by bearer token.
PUBLIC_PREFIXES = ("/accounts/login/", "/healthz", "/static/", "/api/", "/v1/")


class LoginRequiredEverywhereMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.user.is_authenticated and not request.path.startswith(PUBLIC_PREFIXES):
            if request.headers.get("accept", "").startswith("application/json"):
                return JsonResponse({"error": "authentication required"}, status=401)
            return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
        return self.get_response(request)
