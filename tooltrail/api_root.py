"""The documented JSON API: one django-ninja instance holding each app's router.

``/api/openapi.json`` is generated from the typed endpoints; ``/api/docs`` renders it as
a page (server-side, no CDN). Every error is ``{"error": message, "code": code}``.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError

from agents.api import router as agents_router
from toolsapp.api import router as tools_router
from traces.api import router as traces_router

from .api import ApiError, TokenOrSession, error_response

api = NinjaAPI(
    title="Tooltrail API",
    version="1",
    description=(
        "Agents, model endpoints, toolsets, tools, traces and their steps; start and "
        "cancel runs. Authenticate with `Authorization: Bearer <token>` (a token from "
        "the *API tokens* page) or a signed-in session (writes then need the CSRF token). "
        'Errors are `{"error": "<message>", "code": "<code>"}`.'
    ),
    auth=TokenOrSession(),
    urls_namespace="api",
    docs_url=None,
    openapi_url="/openapi.json",
)
api.add_router("", traces_router)
api.add_router("", agents_router)
api.add_router("", tools_router)


@api.exception_handler(ApiError)
def _api_error(request: HttpRequest, exc: ApiError) -> HttpResponse:
    return error_response(str(exc), exc.status, exc.code)


@api.exception_handler(ValidationError)
def _validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'request'}: {e.get('msg')}"
        for e in exc.errors
    )
    return error_response(f"invalid request: {problems}", 400, "invalid")


@api.exception_handler(AuthenticationError)
def _auth_error(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    return error_response("authentication required: send Authorization: Bearer <token>", 401)


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    return error_response(str(exc), exc.status_code)


def api_docs_view(request: HttpRequest) -> HttpResponse:
    """The OpenAPI document as a readable page: every operation with its parameters,
    body and answers, and the schemas they name."""
    schema = api.get_openapi_schema(path_prefix="/api")
    operations = []
    for path, methods in schema["paths"].items():
        for method, op in methods.items():
            operations.append(
                {
                    "path": path,
                    "method": method.upper(),
                    "summary": op.get("summary", ""),
                    "description": op.get("description", ""),
                    "tags": op.get("tags", []),
                    "parameters": op.get("parameters", []),
                    "body": (op.get("requestBody") or {})
                    .get("content", {})
                    .get("application/json", {})
                    .get("schema"),
                    "responses": [
                        {
                            "status": status,
                            "schema": (r.get("content") or {})
                            .get("application/json", {})
                            .get("schema", {}),
                        }
                        for status, r in op.get("responses", {}).items()
                    ],
                }
            )
    return render(
        request,
        "tooltrail/api_docs.html",
        {
            "info": schema["info"],
            "operations": operations,
            "schemas": schema.get("components", {}).get("schemas", {}),
        },
    )
