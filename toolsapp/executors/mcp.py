"""``mcp`` tools: called with ``tools/call`` on their server's session, which this
process keeps open and reuses (``toolsapp.mcpclient``)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from django.conf import settings

from .base import ToolExecutionError

if TYPE_CHECKING:
    from toolsapp.models import Tool


def execute(
    tool: Tool, arguments: dict[str, Any], timeout: float, cancel: threading.Event | None = None
) -> Any:
    from toolsapp.mcpclient import SESSIONS
    from toolsapp.mcpservers import server_spec

    server = tool.mcp_server
    if server is None:
        raise ToolExecutionError(f"MCP tool {tool.name!r} has no server")
    if not server.enabled:
        raise ToolExecutionError(f"MCP server {server.name!r} is disabled")
    return SESSIONS.call_tool(
        server_spec(server),
        name=(tool.config or {}).get("mcp_name", tool.name),
        arguments=arguments,
        timeout=timeout,
        cancel=cancel,
        max_bytes=settings.TOOLTRAIL_MCP_MAX_RESULT_BYTES,
    )
