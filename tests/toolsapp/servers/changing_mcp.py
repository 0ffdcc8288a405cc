"""A small MCP server for the tests, on the SDK's MCPServer (FastMCP in SDK 1.x), over stdio.

    python tests/toolsapp/servers/changing_mcp.py TOOLS.json

Its "catalogue" tools come from TOOLS.json (``[{"name", "description"}]``, each echoing
its ``text`` argument). ``reload`` re-reads the file (adding, changing and removing
catalogue tools) and sends ``notifications/tools/list_changed`` when asked to.
``hang``, ``crash`` and ``garbage`` misbehave on purpose.
"""

from __future__ import annotations

import json
import os
import sys
import time

from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("changing")
TOOLS_FILE = sys.argv[1]
catalogue: dict[str, str] = {}


def _echo_tool(name: str):
    def tool(text: str) -> str:
        return f"{name}: {text}"

    return tool


def load() -> None:
    with open(TOOLS_FILE) as f:
        wanted = {t["name"]: t["description"] for t in json.load(f)}
    for name in list(catalogue):
        if name not in wanted or wanted[name] != catalogue[name]:
            server.remove_tool(name)
            del catalogue[name]
    for name, description in wanted.items():
        if name not in catalogue:
            server.add_tool(_echo_tool(name), name=name, description=description)
            catalogue[name] = description


@server.tool()
async def reload(notify: bool, ctx: Context) -> str:
    """Re-read the catalogue file."""
    load()
    if notify:
        await ctx.session.send_tool_list_changed()
    return "reloaded"


@server.tool()
def pid() -> int:
    """This server process's id (the same one while a session is reused)."""
    return os.getpid()


@server.tool()
def hang(seconds: float) -> str:
    """Never answers in time."""
    time.sleep(seconds)
    return "late"


@server.tool()
def crash() -> str:
    """Dies mid-call."""
    os._exit(3)


@server.tool()
def garbage() -> str:
    """Writes something that is not JSON-RPC on stdout, then no answer."""
    os.write(1, b'this is not json\n{"jsonrpc": "2.0", "id": "nope"\n')
    time.sleep(60)
    return "unreachable"


if __name__ == "__main__":
    load()
    server.run("stdio")
