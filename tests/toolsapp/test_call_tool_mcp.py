"""call_tool and export_tools reach MCP tools too: one lookup of sources for every kind."""

from __future__ import annotations

import json
import sys

import pytest
from django.core.management import CommandError, call_command

from toolsapp.mcpclient import SESSIONS
from toolsapp.mcpservers import mcp_server_register, mcp_server_sync

pytestmark = pytest.mark.django_db


@pytest.fixture
def time_server():
    mcp_server_sync(
        server=mcp_server_register(name="time", command=f"{sys.executable} -m mcp_server_time")
    )
    yield
    SESSIONS.close()


def test_call_tool_and_export_tools_work_on_an_mcp_server(time_server, capsys):
    call_command(
        "call_tool", "get_current_time", "--source", "time", "--args", '{"timezone": "Asia/Tokyo"}'
    )
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["timezone"] == "Asia/Tokyo"

    with pytest.raises(CommandError, match="'timezone' is a required property"):
        call_command("call_tool", "get_current_time", "--source", "mcp:time", "--args", "{}")

    call_command("export_tools", "--source", "mcp:time")
    names = {json.loads(line)["function"]["name"] for line in capsys.readouterr().out.splitlines()}
    assert names == {"get_current_time", "convert_time"}
