from __future__ import annotations

import contextlib
import hashlib
import json
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from .executors import ToolExecutionError
from .forms import RAW_FIELD, try_arguments, try_fields
from .importers.openapi import SpecError, spec_read
from .models import HttpToolSource, Tool
from .selectors import ToolLookupError, tool_get, tool_list, tool_search_rank, tool_sources
from .services import OpenApiImport, openapi_import_apply, openapi_import_plan, tool_execute
from .validation import ToolArgumentsError

TOOLS_PER_PAGE = 100
SEARCH_RESULTS = 50


def tool_list_view(request: HttpRequest) -> HttpResponse:
    filters = {k: request.GET.get(k, "") for k in ("kind", "source", "status")}
    qs = tool_list(**{k: v or None for k, v in filters.items()})
    # ?q= ranks the filtered tools by the retrieval index agents use: the best 50, best first.
    search = request.GET.get("q", "").strip()[:500]
    if search:
        qs = tool_search_rank(query=search, tools=qs, k=SEARCH_RESULTS)
    page = Paginator(qs, TOOLS_PER_PAGE).get_page(request.GET.get("page"))
    template = "toolsapp/tool_list.html"
    if request.htmx:
        template += "#rows"
    return render(
        request,
        template,
        {
            "page": page,
            "tools": page.object_list,
            "filters": filters,
            "query": urlencode({k: v for k, v in {**filters, "q": search}.items() if v}),
            "q": search,
            "kinds": Tool.Kind.choices,
            "statuses": Tool.Status.choices,
            "sources": tool_sources(),
            "can_import": request.user.has_perm("toolsapp.import_tools"),
        },
    )


def _get_tool(name: str, source: str) -> Tool:
    try:
        return tool_get(name=name, source=source)
    except ToolLookupError:
        raise Http404("no such tool") from None


def _detail_context(request: HttpRequest, tool: Tool, **extra: Any) -> dict[str, Any]:
    data = extra.pop("data", {})
    return {
        "tool": tool,
        "schema": json.dumps(tool.parameters, indent=2),
        "toolsets": tool.toolsets.all(),
        "fields": try_fields(schema=tool.parameters or {}, data=data),
        "raw_field": RAW_FIELD,
        "raw_value": data.get(RAW_FIELD, ""),
        "can_run": request.user.has_perm("toolsapp.run_tool"),
        "calls_query": urlencode({"name": tool.name, "source": tool.source, "tool": tool.pk}),
        **extra,
    }


def tool_detail_view(request: HttpRequest, name: str) -> HttpResponse:
    # Names are unique within a source; ?source= picks one ("" is Python and code tools).
    tool = _get_tool(name, request.GET.get("source", ""))
    return render(request, "toolsapp/tool_detail.html", _detail_context(request, tool))


@require_POST
def tool_try_view(request: HttpRequest, name: str) -> HttpResponse:
    """Run the tool with the form's arguments through the same validation and executor
    as an agent's call, and show the result (or the error) under the form."""
    tool = _get_tool(name, request.GET.get("source", ""))
    data = request.POST.dict()
    outcome: dict[str, Any]
    status = 200
    if not request.user.has_perm("toolsapp.run_tool"):
        outcome, status = {"error": "Your role cannot run tools."}, 403
    else:
        try:
            arguments = try_arguments(schema=tool.parameters or {}, data=data)
            result = tool_execute(tool=tool, arguments=arguments)
            outcome = {"arguments": json.dumps(arguments), "result": json.dumps(result, indent=2)}
        except ToolArgumentsError as exc:
            outcome, status = {"error": str(exc)}, 400
        except ToolExecutionError as exc:
            outcome = {"error": f"{tool.name} failed: {exc}"}
    template = "toolsapp/tool_detail.html"
    if request.htmx:
        template += "#try-result"
    context = _detail_context(request, tool, data=data, outcome=outcome)
    return render(request, template, context, status=status)


# --- OpenAPI import ------------------------------------------------------------------

PREVIEW_LIST_LIMIT = 200
STASH_SECONDS = 24 * 3600


def _stash_dir() -> Path:
    return Path(settings.VAR_DIR) / "openapi-previews"


def _stash(data: bytes) -> str:
    """Keep the previewed spec's bytes until it is imported; returns their sha256."""
    digest = hashlib.sha256(data).hexdigest()
    folder = _stash_dir()
    folder.mkdir(parents=True, exist_ok=True)
    # Previews nobody imported are dropped after a day.
    cutoff = time.time() - STASH_SECONDS
    for old in folder.iterdir():
        with contextlib.suppress(OSError):
            if old.stat().st_mtime < cutoff:
                old.unlink()
    (folder / digest).write_bytes(data)
    return digest


def _unstash(digest: str) -> bytes:
    if not re.fullmatch(r"[0-9a-f]{64}", digest or ""):
        raise SpecError("the preview is missing; preview the spec again")
    try:
        return (_stash_dir() / digest).read_bytes()
    except OSError:
        raise SpecError("the preview has expired; preview the spec again") from None


def _spec_from_request(request: HttpRequest) -> tuple[bytes, str]:
    """The spec's bytes and a file name, from an upload, pasted text, or a path/URL."""
    upload = request.FILES.get("spec_file")
    if upload is not None:
        if upload.size > settings.TOOLTRAIL_OPENAPI_MAX_BYTES:
            raise SpecError(
                f"larger than the {settings.TOOLTRAIL_OPENAPI_MAX_BYTES} byte limit",
                file=upload.name,
            )
        return upload.read(), upload.name
    text = request.POST.get("spec_text", "")
    if text.strip():
        return text.encode(), "pasted spec"
    location = request.POST.get("spec_location", "").strip()
    if location:
        return spec_read(
            location=location, max_bytes=settings.TOOLTRAIL_OPENAPI_MAX_BYTES
        ), location
    raise SpecError("choose a file, paste a spec, or give a path or URL")


def openapi_import_view(request: HttpRequest) -> HttpResponse:
    """GET: the form. POST ``preview``: what the import would create, update and
    deactivate (nothing saved). POST ``import``: save that preview in one transaction."""
    can_import = request.user.has_perm("toolsapp.import_tools")
    fields = ("name", "base_url", "spec_location", "spec_text", "auth", "auth_name", "secret_env")
    form = {k: request.POST.get(k, "") for k in fields}
    context: dict[str, Any] = {
        "form": form,
        "can_import": can_import,
        "auth_choices": HttpToolSource.Auth.choices,
    }
    if request.method != "POST":
        return render(request, "toolsapp/openapi_import.html", context)
    if not can_import:
        context["error"] = "Your role cannot import tools."
        return render(request, "toolsapp/openapi_import.html", context, status=403)
    action = request.POST.get("action", "preview")
    try:
        if action == "import":
            digest = request.POST.get("digest", "")
            data, file = _unstash(digest), request.POST.get("file", "") or "spec"
        else:
            data, file = _spec_from_request(request)
            digest = _stash(data)
        plan = openapi_import_plan(
            name=form["name"].strip(),
            data=data,
            file=file,
            base_url=form["base_url"].strip() or None,
        )
        if action == "import":
            # Empty auth fields keep what an earlier import set.
            openapi_import_apply(
                plan=plan,
                auth=form["auth"] or None,
                auth_name=form["auth_name"].strip() or None,
                secret_env=form["secret_env"].strip() or None,
            )
            (_stash_dir() / digest).unlink(missing_ok=True)
            return redirect(
                f"{reverse('toolsapp:tool_list')}?{urlencode({'source': f'openapi:{plan.source}'})}"
            )
    except SpecError as exc:
        context["error"] = str(exc)
        return render(request, "toolsapp/openapi_import.html", context, status=400)
    context.update(_preview_context(plan, digest=digest, file=file))
    return render(request, "toolsapp/openapi_import.html", context)


def _preview_context(plan: OpenApiImport, *, digest: str, file: str) -> dict[str, Any]:
    drafts = {d.name: d for d in plan.drafts}
    groups = []
    for label, names in (
        ("created", plan.created),
        ("updated", plan.updated),
        ("deactivated", plan.deactivated),
    ):
        rows = [
            {
                "name": n,
                "method": drafts[n].config["method"] if n in drafts else "",
                "path": drafts[n].config["path"] if n in drafts else "",
                "description": drafts[n].description if n in drafts else "",
            }
            for n in names[:PREVIEW_LIST_LIMIT]
        ]
        groups.append(
            {"label": label, "rows": rows, "more": max(0, len(names) - PREVIEW_LIST_LIMIT)}
        )
    existing = HttpToolSource.objects.filter(name=plan.source).first()
    return {
        "plan": plan,
        "summary": plan.summary(),
        "groups": groups,
        "digest": digest,
        "file": file,
        "existing": existing,
    }
