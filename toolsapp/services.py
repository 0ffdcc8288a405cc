"""Writes and actions on tools: syncing built-ins, registering Python tools, importing
OpenAPI specs, and calling a tool with validation."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .builtin import BUILTIN_TOOLS
from .executors import ToolCancelled, ToolExecutionError, executor_for
from .importers.openapi import SpecError, ToolDraft, spec_parse, spec_read, spec_tools
from .models import HttpToolSource, Tool, ToolIndexChange, Toolset, tool_fingerprint
from .validation import ToolArgumentsError, arguments_check, schema_check


@transaction.atomic
def builtin_tools_sync() -> list[Tool]:
    """Create or update the built-in Python tools, and the ``builtin`` toolset holding them."""
    tools = []
    for spec in BUILTIN_TOOLS:
        schema_check(spec["parameters"])
        tool, _ = Tool.objects.update_or_create(
            name=spec["name"],
            source="",
            defaults={
                "description": spec["description"],
                "parameters": spec["parameters"],
                "kind": Tool.Kind.PYTHON,
                "config": {"callable": spec["callable"]},
            },
        )
        tools.append(tool)
    toolset, _ = Toolset.objects.get_or_create(
        slug="builtin",
        defaults={
            "name": "Built-in tools",
            "description": "Calculator, clock, units, echo, sleep.",
        },
    )
    toolset.tools.add(*tools)
    return tools


# The change log is pruned as it grows; a process whose last-seen change was pruned
# rebuilds from the table (re-embedding only changed text), so this only bounds its size.
TOOL_INDEX_CHANGES_KEPT = 20_000


def tool_index_mark(*, tool_ids: list[int]) -> None:
    """Tell every process's retrieval index that these tools changed (were created,
    updated, deactivated or deleted). Runs in the caller's transaction. Saving a ``Tool``
    does this by itself (a signal); bulk writes that send no signals call it."""
    if not tool_ids:
        return
    changes = ToolIndexChange.objects.bulk_create(
        [ToolIndexChange(tool_id=tool_id) for tool_id in tool_ids]
    )
    last = changes[-1].pk
    if last is not None and last % 1000 < len(tool_ids):
        ToolIndexChange.objects.filter(pk__lte=last - TOOL_INDEX_CHANGES_KEPT).delete()


def tool_call_check(*, tool: Tool, arguments: dict[str, Any]) -> None:
    """Raise ToolArgumentsError if the arguments break the tool's schema."""
    arguments_check(schema=tool.parameters, arguments=arguments)


def tool_execute(
    *,
    tool: Tool,
    arguments: dict[str, Any],
    timeout: float | None = None,
    cancel: threading.Event | None = None,
) -> Any:
    """Validate, then run one call. Returns a JSON-able result.

    Raises ToolArgumentsError for bad arguments (nothing runs), ToolTimeout when the
    tool overruns (it is stopped), ToolCancelled within a second of ``cancel`` being set
    during the call (it is stopped), ToolExecutionError when it fails.
    """
    tool_call_check(tool=tool, arguments=arguments)
    target = (tool.config or {}).get("callable") if tool.kind == Tool.Kind.PYTHON else None
    if target:  # (no target at all: the executor says so)
        python_target_check(target=target)
    if not tool.is_active:
        raise ToolExecutionError(f"tool {tool.name!r} is {tool.get_status_display().lower()}")
    executor = executor_for(tool.kind)
    if executor is None:
        raise ToolExecutionError(f"tools of kind {str(tool.kind)!r} cannot be run yet")
    limit = min(timeout or tool.timeout_seconds, settings.TOOLTRAIL_TOOL_TIMEOUT_SECONDS)
    if cancel is not None and cancel.is_set():
        raise ToolCancelled("the tool call was cancelled before it started")
    result = executor(tool, arguments, limit, cancel)
    try:
        json.dumps(result)
    except (TypeError, ValueError):
        result = repr(result)
    return result


class ToolsetInUse(Exception):
    """A toolset that agents use cannot be deleted; the message names them."""


@transaction.atomic
def toolset_duplicate(*, toolset: Toolset) -> Toolset:
    """A copy of ``toolset`` with the same tools under a free slug (``<slug>-copy``)."""
    from tooltrail.copies import copy_name

    slug = copy_name(model=Toolset, field="slug", base=toolset.slug, max_length=50)
    copy = Toolset.objects.create(
        name=f"{toolset.name} (copy)"[:100], slug=slug, description=toolset.description
    )
    copy.tools.set(toolset.tools.all())
    return copy


def toolset_delete(*, toolset: Toolset) -> None:
    """Delete a toolset no agent uses (raises ToolsetInUse naming the agents)."""
    users = [str(a) for a in toolset.agents.all()]
    if users:
        raise ToolsetInUse(f"{toolset.name} is used by {', '.join(users)}: change them first")
    toolset.delete()


# --- python tools --------------------------------------------------------------------


def python_target_check(*, target: str) -> None:
    """Raise ToolExecutionError unless ``target`` (``module:function``) is allowed by
    ``TOOLTRAIL_PYTHON_TOOLS``: a stored or typed path is never imported otherwise."""
    patterns = settings.TOOLTRAIL_PYTHON_TOOLS
    if not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", target or ""):
        raise ToolExecutionError(
            f"python tool target {target!r} is not of the form module:function"
        )
    if not any(fnmatch.fnmatchcase(target, p) for p in patterns):
        raise ToolExecutionError(
            f"python tool target {target!r} is not allowed by TOOLTRAIL_PYTHON_TOOLS "
            f"({', '.join(patterns)})"
        )


@transaction.atomic
def python_tool_register(
    *, name: str, target: str, description: str = "", parameters: dict[str, Any] | None = None
) -> Tool:
    """Create or update a ``python`` tool calling ``target`` (allow-listed in settings)."""
    python_target_check(target=target)
    parameters = parameters or {"type": "object", "properties": {}}
    schema_check(parameters)
    if not re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", name):
        raise ToolArgumentsError(f"tool name {name!r} must match ^[a-zA-Z0-9_-]{{1,64}}$")
    tool, _ = Tool.objects.update_or_create(
        name=name,
        source="",
        defaults={
            "description": description,
            "parameters": parameters,
            "kind": Tool.Kind.PYTHON,
            "config": {"callable": target},
            "status": Tool.Status.ACTIVE,
        },
    )
    return tool


# --- OpenAPI import ------------------------------------------------------------------

Progress = Callable[[str], None]


@dataclass
class OpenApiImport:
    """What importing one spec creates, updates, leaves alone and deactivates. Made by
    ``openapi_import_plan`` (nothing saved: the preview) and by ``tool_import_openapi``."""

    source: str
    file: str
    title: str
    base_url: str
    drafts: list[ToolDraft]
    spec: dict[str, Any]
    sha256: str
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deactivated: list[str] = field(default_factory=list)
    fingerprints: dict[str, str] = field(default_factory=dict, repr=False)

    def summary(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "operations": len(self.drafts),
            "created": len(self.created),
            "updated": len(self.updated),
            "unchanged": len(self.unchanged),
            "deactivated": len(self.deactivated),
        }


def _source_name_check(name: str) -> None:
    if not re.fullmatch(r"[-a-zA-Z0-9_]{1,100}", name or ""):
        raise SpecError(f"source name {name!r} must be 1-100 letters, digits, '-' or '_' (a slug)")


def _draft_fingerprint(draft: ToolDraft) -> str:
    return tool_fingerprint(
        description=draft.description, parameters=draft.parameters, config=draft.config
    )


def _same(tool: Tool, fingerprint: str, source: HttpToolSource | None) -> bool:
    return (
        tool.kind == Tool.Kind.HTTP
        and tool.status == Tool.Status.ACTIVE
        and source is not None
        and tool.http_source_id == source.pk
        and tool.fingerprint == fingerprint
    )


def _plan_diff(plan: OpenApiImport, source: HttpToolSource | None) -> dict[str, Tool]:
    """Sort the plan's drafts into created/updated/unchanged against the saved tools,
    comparing fingerprints (a big spec's schemas are never loaded back)."""
    existing = {
        t.name: t
        for t in Tool.objects.filter(source=f"openapi:{plan.source}").only(
            "pk", "name", "kind", "status", "http_source", "fingerprint"
        )
    }
    if not plan.fingerprints:
        plan.fingerprints = {d.name: _draft_fingerprint(d) for d in plan.drafts}
    plan.created, plan.updated, plan.unchanged = [], [], []
    for draft in plan.drafts:
        tool = existing.get(draft.name)
        if tool is None:
            plan.created.append(draft.name)
        elif _same(tool, plan.fingerprints[draft.name], source):
            plan.unchanged.append(draft.name)
        else:
            plan.updated.append(draft.name)
    wanted = {d.name for d in plan.drafts}
    plan.deactivated = [
        n for n, t in existing.items() if n not in wanted and t.status != Tool.Status.INACTIVE
    ]
    return existing


def openapi_import_plan(
    *,
    name: str,
    data: bytes | str | None = None,
    location: str | None = None,
    file: str = "",
    base_url: str | None = None,
    progress: Progress | None = None,
) -> OpenApiImport:
    """Read and convert a spec (``data``, or the file/URL at ``location``) and say what
    importing it as source ``name`` would do. Saves nothing. Raises SpecError."""
    say = progress or (lambda _msg: None)
    _source_name_check(name)
    if data is None:
        if not location:
            raise SpecError("give the spec's text, a file, or a path/URL")
        file = file or location
        data = spec_read(location=location, max_bytes=settings.TOOLTRAIL_OPENAPI_MAX_BYTES)
    raw = data.encode() if isinstance(data, str) else data
    file = file or "pasted spec"
    if len(raw) > settings.TOOLTRAIL_OPENAPI_MAX_BYTES:
        raise SpecError(
            f"larger than the {settings.TOOLTRAIL_OPENAPI_MAX_BYTES} byte limit", file=file
        )
    say(f"read {file} ({len(raw)} bytes)")
    spec = spec_parse(data=raw, file=file)
    parsed = spec_tools(
        spec=spec,
        file=file,
        max_operations=settings.TOOLTRAIL_OPENAPI_MAX_OPERATIONS,
        progress=say,
    )
    plan = OpenApiImport(
        source=name,
        file=file,
        title=parsed.title,
        base_url=base_url or parsed.base_url,
        drafts=parsed.tools,
        spec=spec,
        sha256=hashlib.sha256(raw).hexdigest(),
    )
    if location and not base_url and plan.base_url.startswith("/"):
        from .importers.openapi import spec_base_url

        plan.base_url = spec_base_url(spec=spec, location=location)
    _plan_diff(plan, HttpToolSource.objects.filter(name=name).first())
    return plan


def openapi_import_apply(
    *,
    plan: OpenApiImport,
    auth: str | None = None,
    auth_name: str | None = None,
    secret_env: str | None = None,
    progress: Progress | None = None,
) -> OpenApiImport:
    """Save a plan in one transaction: the source, new tools, changed tools, and the tools
    that left the spec marked inactive (never deleted). Recomputes the plan's counts
    against the database as it is inside the transaction."""
    say = progress or (lambda _msg: None)
    if auth is not None and auth not in HttpToolSource.Auth.values:
        raise SpecError(f"auth must be one of {', '.join(HttpToolSource.Auth.values)}")
    with transaction.atomic():
        source = HttpToolSource.objects.select_for_update().filter(name=plan.source).first()
        if source is None:
            source = HttpToolSource(name=plan.source)
        source.title = plan.title[:200]
        source.base_url = plan.base_url[:500]
        for attr, value in (("auth", auth), ("auth_name", auth_name), ("secret_env", secret_env)):
            if value is not None:
                setattr(source, attr, value)
        source.spec = plan.spec
        source.spec_sha256 = plan.sha256
        source.save()
        existing = _plan_diff(plan, source)
        key = f"openapi:{plan.source}"
        drafts = {d.name: d for d in plan.drafts}
        Tool.objects.bulk_create(
            [
                Tool(
                    name=n,
                    source=key,
                    http_source=source,
                    kind=Tool.Kind.HTTP,
                    description=drafts[n].description,
                    parameters=drafts[n].parameters,
                    config=drafts[n].config,
                    fingerprint=plan.fingerprints[n],
                    status=Tool.Status.ACTIVE,
                )
                for n in plan.created
            ],
            batch_size=500,
        )
        say(f"created {len(plan.created)} tools")
        now = timezone.now()
        changed = []
        for n in plan.updated:
            tool, draft = existing[n], drafts[n]
            tool.http_source = source
            tool.kind = Tool.Kind.HTTP
            tool.status = Tool.Status.ACTIVE
            tool.description = draft.description
            tool.parameters = draft.parameters
            tool.config = draft.config
            tool.fingerprint = plan.fingerprints[n]
            tool.updated_at = now
            changed.append(tool)
        fields = [
            "http_source",
            "kind",
            "status",
            "description",
            "parameters",
            "config",
            "fingerprint",
            "updated_at",
        ]
        Tool.objects.bulk_update(changed, fields, batch_size=500)
        say(f"updated {len(plan.updated)} tools")
        # Bulk writes send no signals: tell the retrieval index (deactivating changes no
        # indexed text; searches filter by status).
        created_ids = Tool.objects.filter(source=key, name__in=plan.created).values_list(
            "id", flat=True
        )
        tool_index_mark(tool_ids=[*created_ids, *(t.pk for t in changed)])
        Tool.objects.filter(source=key, name__in=plan.deactivated).update(
            status=Tool.Status.INACTIVE, updated_at=now
        )
        say(f"deactivated {len(plan.deactivated)} tools")
    return plan


def tool_import_openapi(
    *,
    name: str,
    data: bytes | str | None = None,
    location: str | None = None,
    file: str = "",
    base_url: str | None = None,
    auth: str | None = None,
    auth_name: str | None = None,
    secret_env: str | None = None,
    progress: Progress | None = None,
) -> OpenApiImport:
    """Import an OpenAPI 3.0/3.1 spec as the tools of HTTP source ``name``: one tool per
    operation; importing again updates in place. Everything or nothing is saved.
    Raises SpecError naming the file and JSON pointer of the problem."""
    plan = openapi_import_plan(
        name=name, data=data, location=location, file=file, base_url=base_url, progress=progress
    )
    return openapi_import_apply(
        plan=plan, auth=auth, auth_name=auth_name, secret_env=secret_env, progress=progress
    )
