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


def home(request: HttpRequest) -> HttpResponse:
    return redirect("traces:trace_list")


@login_required
def token_list(request: HttpRequest) -> HttpResponse:
    new_token = None
    if request.method == "POST":
        days = int_param(request.POST.get("expires_in_days", "").strip(), default=0, lo=1)
        if days is None or days > MAX_TOKEN_DAYS:
            messages.error(
                request, f"Expiry: a whole number of days from 1 to {MAX_TOKEN_DAYS}, or blank."
            )
        else:
            _, new_token = api_token_create(
                user=request.user,
                name=request.POST.get("name", "").strip()[:100],
                expires_in_days=days or None,
            )
    tokens = ApiToken.objects.filter(user=request.user)
    return render(request, "tooltrail/tokens.html", {"tokens": tokens, "new_token": new_token})


@login_required
@require_POST
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    token = get_object_or_404(ApiToken, pk=pk, user=request.user)
    api_token_revoke(token=token)
    messages.success(request, f"Token {token.prefix}… revoked.")
    return redirect("token_list")
