"""python manage.py mcp_sync --name NAME [--command "CMD ARGS" | --url URL] [--env K=V ...]

Registers the MCP server (or points it at a new command/URL), syncs its tools and prints,
as its last line, ``{"server": NAME, "tools": N, "added": a, "updated": u,
"deactivated": d}``. Without --command/--url the server must exist already.
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from toolsapp.mcpclient import SESSIONS, McpError
from toolsapp.mcpservers import McpServerError, mcp_server_register, mcp_server_sync
from toolsapp.models import McpServer


class Command(BaseCommand):
    help = "Register an MCP server (stdio command or streamable-HTTP URL) and sync its tools."

    def add_arguments(self, parser):
        parser.add_argument(
            "--name", required=True, help="the server's name (tools get source mcp:NAME)"
        )
        where = parser.add_mutually_exclusive_group()
        where.add_argument(
            "--command", default="", help='stdio: the command line, e.g. "uvx mcp-server-time"'
        )
        where.add_argument("--url", default="", help="streamable HTTP: the server's MCP URL")
        parser.add_argument(
            "--env",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="extra environment for a stdio server (repeatable; no secrets: it is stored)",
        )

    def handle(self, *args, **options):
        name = options["name"]
        try:
            env = dict(item.split("=", 1) for item in options["env"])
        except ValueError as exc:
            raise CommandError("--env takes KEY=VALUE") from exc
        try:
            if options["command"] or options["url"]:
                server = mcp_server_register(
                    name=name, command=options["command"], url=options["url"], env=env or None
                )
            else:
                server = McpServer.objects.filter(name=name).first()
                if server is None:
                    raise CommandError(f"no MCP server named {name!r}: give --command or --url")
            where = server.command or server.url
            self.stdout.write(f"syncing MCP server {server.name!r} ({server.transport}: {where})")
            plan = mcp_server_sync(server=server)
            for tool in plan.tools:
                if tool.action != "unchanged":
                    self.stdout.write(f"  {tool.action}: {tool.name}")
            for tool_name in plan.deactivate:
                self.stdout.write(f"  deactivated: {tool_name}")
        except (McpError, McpServerError) as exc:
            raise CommandError(str(exc)) from exc
        finally:
            SESSIONS.close()
        self.stdout.write(json.dumps(plan.summary()))
