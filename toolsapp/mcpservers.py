"""Services for MCP servers: register one, preview and sync its tools.

Sync lists the server's tools (``tools/list``) and, in one transaction, adds new ones,
updates changed ones (and re-activates one that came back), marks the ones it no longer
lists ``inactive`` — never deletes: traces point at them. Tools are
``Tool(kind=mcp, source="mcp:<server>", mcp_server=server)``; a name that does not fit
OpenAI's rule is made to fit and the server's own name kept in ``config.mcp_name``.

Sync runs on demand (``mcp_sync`` command, the import page), on a schedule (the
``toolsapp.tasks.mcp_sync_all_task`` beat entry) and when a server sends
``notifications/tools/list_changed`` on a session this process holds.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from tooltrail.forksafe import database_work

from .mcpclient import SESSIONS, McpError, ServerSpec
from .models import McpServer, Tool
from .validation import ToolArgumentsError, schema_check

NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")

logger = logging.getLogger(__name__)


class McpServerError(ValueError):
    """Bad input for an MCP server (name, command, URL); nothing was saved."""


def server_spec(server: McpServer) -> ServerSpec:
    return ServerSpec(
        name=server.name,
        command=server.command if server.transport == McpServer.Transport.STDIO else "",
        url=server.url if server.transport == McpServer.Transport.HTTP else "",
        env=tuple(sorted((str(k), str(v)) for k, v in (server.env or {}).items())),
    )


def mcp_server_check(*, name: str, command: str = "", url: str = "", env: Any = None) -> None:
    """Raise McpServerError unless exactly one of command/URL is given and they look usable."""
    if not re.fullmatch(r"[-a-zA-Z0-9_]{1,100}", name or ""):
        raise McpServerError(f"server name {name!r} must be letters, digits, - and _ (1-100)")
    if bool(command.strip()) == bool(url.strip()):
        raise McpServerError("give either a command (stdio) or a URL (streamable HTTP), not both")
    if url and not re.match(r"^https?://", url):
        raise McpServerError(f"the URL {url!r} must start with http:// or https://")
    if env is not None and not (
        isinstance(env, dict) and all(isinstance(v, str) for v in env.values())
    ):
        raise McpServerError("env must be an object of strings")


def mcp_server_register(
    *, name: str, command: str = "", url: str = "", env: dict[str, str] | None = None
) -> McpServer:
    """The server named ``name`` pointed at ``command``/``url``, NOT saved: a new server
    is saved by its first successful ``mcp_server_sync``, so an unreachable one leaves
    nothing behind."""
    mcp_server_check(name=name, command=command, url=url, env=env)
    server = McpServer.objects.filter(name=name).first() or McpServer(name=name)
    server.transport = McpServer.Transport.HTTP if url else McpServer.Transport.STDIO
    server.command, server.url = command.strip(), url.strip()
    server.env, server.enabled = env or {}, True
    return server


def _fit_name(name: str, taken: set[str]) -> str:
    """A name that fits ^[a-zA-Z0-9_-]{1,64}$ and is not yet taken within the server."""
    if NAME_RE.match(name) and name not in taken:
        return name
    base = re.sub(r"[^a-zA-Z0-9_-]+", "_", name).strip("_") or "tool"
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    fitted = base if len(base) <= 64 and base not in taken else f"{base[:55]}_{digest}"
    return fitted


@dataclass
class PlannedTool:
    name: str
    mcp_name: str
    description: str
    parameters: dict[str, Any]
    config: dict[str, Any]
    action: str  # "add", "update", "unchanged"


@dataclass
class SyncPlan:
    server: str
    tools: list[PlannedTool] = field(default_factory=list)
    deactivate: list[str] = field(default_factory=list)

    def count(self, action: str) -> int:
        return sum(t.action == action for t in self.tools)

    def summary(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "tools": len(self.tools),
            "added": self.count("add"),
            "updated": self.count("update"),
            "deactivated": len(self.deactivate),
        }


def _plan(*, server_name: str, listed: list[dict[str, Any]], existing: dict[str, Tool]) -> SyncPlan:
    """What a sync would do, compared with the tools saved now (keyed by MCP name).
    Raises McpServerError naming a tool whose schema is not valid JSON Schema."""
    plan = SyncPlan(server=server_name)
    by_mcp_name = {(t.config or {}).get("mcp_name", t.name): t for t in existing.values()}
    taken = {t.name for t in existing.values()}
    seen = set()
    for item in listed:
        mcp_name = str(item.get("name", ""))
        if not mcp_name or mcp_name in seen:
            raise McpServerError(
                f"server {server_name!r} lists a tool with an empty or repeated name {mcp_name!r}"
            )
        seen.add(mcp_name)
        schema = item.get("inputSchema") or {"type": "object"}
        try:
            schema_check(schema)
        except ToolArgumentsError as exc:
            raise McpServerError(f"tool {mcp_name!r} of server {server_name!r}: {exc}") from exc
        config = {"mcp_name": mcp_name}
        for key in ("annotations", "outputSchema", "title"):
            if key in item:
                config[key] = item[key]
        description = str(item.get("description") or "")
        current = by_mcp_name.get(mcp_name)
        if current is None:
            name = _fit_name(mcp_name, taken)
            taken.add(name)
            action = "add"
        else:
            name = current.name
            same = (
                current.description == description
                and current.parameters == schema
                and current.config == config
                and current.status == Tool.Status.ACTIVE
            )
            action = "unchanged" if same else "update"
        plan.tools.append(PlannedTool(name, mcp_name, description, schema, config, action))
    plan.deactivate = sorted(
        t.name
        for mcp_name, t in by_mcp_name.items()
        if mcp_name not in seen and t.status != Tool.Status.INACTIVE
    )
    return plan


def _existing(server: McpServer) -> dict[str, Tool]:
    if server.pk is None:
        return {}
    return {t.name: t for t in Tool.objects.filter(source=f"mcp:{server.name}")}


def _list(server: McpServer) -> list[dict[str, Any]]:
    return SESSIONS.list_tools(server_spec(server), timeout=settings.TOOLTRAIL_MCP_TIMEOUT_SECONDS)


def mcp_server_preview(*, server: McpServer) -> SyncPlan:
    """Ask the server for its tools and say what a sync would do; saves nothing."""
    return _plan(server_name=server.name, listed=_list(server), existing=_existing(server))


def mcp_server_sync(*, server: McpServer) -> SyncPlan:
    """Sync the server's tools (see the module docstring), saving the server itself with
    them (a new one, or a changed command/URL). On failure no tool changes, a saved
    server's ``last_error`` says why, and McpError/McpServerError is raised."""
    try:
        listed = _list(server)
        # The list_changed hook runs this in a thread of a worker that forks (tool calls,
        # pool children): the database part is held off from forks, the network part not.
        with database_work(), transaction.atomic():
            if server.pk is not None:  # one sync of a server at a time
                McpServer.objects.select_for_update().filter(pk=server.pk).first()
            existing = _existing(server)
            plan = _plan(server_name=server.name, listed=listed, existing=existing)
            server.last_synced_at = timezone.now()
            server.last_error = ""
            server.save()
            for planned in plan.tools:
                if planned.action == "unchanged":
                    continue
                current = existing.get(planned.name)
                Tool.objects.update_or_create(
                    source=f"mcp:{server.name}",
                    name=planned.name,
                    defaults={
                        "kind": Tool.Kind.MCP,
                        "mcp_server": server,
                        "description": planned.description,
                        "parameters": planned.parameters,
                        "config": planned.config,
                        "status": Tool.Status.ACTIVE,
                        "timeout_seconds": current.timeout_seconds
                        if current
                        else settings.TOOLTRAIL_MCP_TIMEOUT_SECONDS,
                    },
                )
            Tool.objects.filter(source=f"mcp:{server.name}", name__in=plan.deactivate).update(
                status=Tool.Status.INACTIVE, updated_at=timezone.now()
            )
    except (McpError, McpServerError) as exc:
        if server.pk is not None:  # a server deleted meanwhile updates nothing
            with database_work():
                McpServer.objects.filter(pk=server.pk).update(
                    last_error=str(exc), updated_at=timezone.now()
                )
        raise
    return plan


def mcp_server_sync_by_name(name: str) -> None:
    """The list_changed hook: re-sync the named server from a helper thread."""
    try:
        with database_work():
            server = McpServer.objects.filter(name=name, enabled=True).first()
        if server is not None:
            mcp_server_sync(server=server)
    except (McpError, McpServerError) as exc:
        logger.warning("sync of MCP server %r after tools/list_changed failed: %s", name, exc)
    finally:
        with database_work():
            connection.close()  # this thread's own connection


def mcp_sync_all() -> dict[str, str]:
    """Sync every enabled server; one server's failure does not stop the others."""
    outcome = {}
    for server in McpServer.objects.filter(enabled=True):
        try:
            outcome[server.name] = str(mcp_server_sync(server=server).summary())
        except (McpError, McpServerError) as exc:
            outcome[server.name] = f"error: {exc}"
    return outcome


SESSIONS.on_tools_changed = mcp_server_sync_by_name
