"""What the build pages (agents, endpoints, toolsets) share: delete with confirmation."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render


def delete_confirmed(
    request: HttpRequest,
    *,
    obj,
    delete: Callable[[], None],
    refused: type[Exception],
    label: str,
    done: str,
) -> HttpResponse:
    """GET: the confirmation page. POST: ``delete()``; when it raises ``refused`` (something
    still depends on ``obj``), back to ``obj`` with the reason; else on to ``done``."""
    if request.method != "POST":
        return render(request, "agents/confirm_delete.html", {"object": obj})
    try:
        delete()
    except refused as exc:
        messages.error(request, str(exc))
        return redirect(obj.get_absolute_url())
    messages.success(request, f"{label} {obj.name} deleted.")
    return redirect(done)
