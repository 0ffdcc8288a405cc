from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from .api import bearer_token
from .health import health_report
from .middleware import refuse
from .models import ApiToken
from .params import int_param
from .services import MAX_TOKEN_DAYS, api_token_authenticate, api_token_create, api_token_revoke


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """Up or down for anyone (load balancers); what is wrong, and where, only for
    signed-in staff: hostnames, queues and error texts are a map for an attacker."""
    report = health_report()
    status = 200 if report["ok"] else 503
    user = request.user
    token = bearer_token(request.headers)
    if token:
        user = api_token_authenticate(raw=token)
    if not (user is not None and user.is_authenticated and user.is_staff):
        return JsonResponse({"ok": report["ok"]}, status=status)
    return JsonResponse(report, status=status)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Django's 400 (SuspiciousOperation): a body too large that got past the size
    middleware (a multipart field) is a 413; JSON on the API either way."""
    if isinstance(exception, RequestDataTooBig):
        return refuse(request, f"the request body is too large ({exception})", 413)
    return refuse(request, "the request could not be read", 400)


@login_required
def token_list(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        days = int_param(request.POST.get("expires_in_days", "").strip(), default=0, lo=1)
        if days is None or days > MAX_TOKEN_DAYS:
            messages.error(
                request, f"Expiry: a whole number of days from 1 to {MAX_TOKEN_DAYS}, or blank."
            )
        else:
            _, raw = api_token_create(
                user=request.user,
                name=request.POST.get("name", "").strip()[:100],
                expires_in_days=days or None,
            )
            # Post/Redirect/Get: the new token is shown once, on the page after the
            # redirect, so reloading that page makes no second token.
            request.session["new_api_token"] = raw
        return redirect("token_list")
    new_token = request.session.pop("new_api_token", None)
    tokens = ApiToken.objects.filter(user=request.user)
    return render(request, "tooltrail/tokens.html", {"tokens": tokens, "new_token": new_token})


@login_required
@require_POST
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    token = get_object_or_404(ApiToken, pk=pk, user=request.user)
    api_token_revoke(token=token)
    messages.success(request, f"Token {token.prefix}… revoked.")
    return redirect("token_list")


# --- error pages: the layout for people, the API's JSON under /api/ ---------------------

ERROR_TITLES = {
    400: ("Bad request", "The request could not be understood."),
    403: ("Not allowed", "Your role does not allow this."),
    404: ("Not found", "There is nothing at this address."),
    500: ("Something went wrong", "The error was logged. Try again, or go back."),
}


def _error(request: HttpRequest, status: int, exception: Exception | None = None) -> HttpResponse:
    title, default = ERROR_TITLES[status]
    # Django's own messages (e.g. the URL resolver's) are not for end users; ours are.
    message = str(exception) if exception and status in (403,) and str(exception) else default
    if request.path.startswith("/api/"):
        from .api import error_response

        return error_response(message if status != 404 else "not found", status)
    return render(
        request,
        "errors/error.html",
        {"status": status, "title": title, "message": message},
        status=status,
    )


def error_400(request: HttpRequest, exception: Exception) -> HttpResponse:
    return _error(request, 400, exception)


def error_403(request: HttpRequest, exception: Exception) -> HttpResponse:
    return _error(request, 403, exception)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: a JSON error under ``/api/`` (its documentation and schema
    pages included), the app's own 403 page elsewhere."""
    from django.core.exceptions import PermissionDenied

    return _error(request, 403, PermissionDenied(f"CSRF check failed: {reason}"))


def error_404(request: HttpRequest, exception: Exception) -> HttpResponse:
    return _error(request, 404, exception)


def error_500(request: HttpRequest) -> HttpResponse:
    return _error(request, 500)
