"""MCP servers: sync their tools and call them over sessions this process keeps, against
real servers nobody here wrote (mcp-server-time, mcp-server-git, server-everything from
npm over stdio and streamable HTTP) and a small server of our own that changes its tools
and misbehaves on purpose."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db.models.signals import post_save

from tests.conftest import Stack
from toolsapp.executors import ToolExecutionError, ToolTimeout
from toolsapp.mcpclient import SESSIONS
from toolsapp.mcpservers import (
    McpServerError,
    _plan,
    mcp_server_preview,
    mcp_server_register,
    mcp_server_sync,
)
from toolsapp.models import McpServer, Tool
from toolsapp.selectors import tool_get
from toolsapp.services import tool_execute
from tooltrail import forksafe, launcher

pytestmark = pytest.mark.django_db

PYTHON = sys.executable
REPO = Path(__file__).resolve().parents[2]
CHANGING = REPO / "tests" / "toolsapp" / "servers" / "changing_mcp.py"


@pytest.fixture(autouse=True)
def _close_sessions():
    yield
    SESSIONS.close()


@pytest.fixture(scope="session")
def everything_js() -> str:
    """server-everything from npm, installed into a cache outside the repo (idempotent)."""
    out = subprocess.run(
        ["bash", str(REPO / "scripts" / "mcp_test_servers.sh")],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return out.stdout.strip().splitlines()[-1]


def sync(name: str, **where):
    return mcp_server_sync(server=mcp_server_register(name=name, **where))


def call(name: str, server: str, **arguments):
    return tool_execute(tool=tool_get(name=name, source=f"mcp:{server}"), arguments=arguments)


@pytest.fixture
def catalogue(tmp_path):
    path = tmp_path / "tools.json"

    def write(**tools: str) -> None:
        path.write_text(json.dumps([{"name": n, "description": d} for n, d in tools.items()]))

    write(alpha="first", beta="second")
    write.path = path
    return write


@pytest.fixture
def changing(catalogue):
    plan = sync("changing", command=f"{PYTHON} {CHANGING} {catalogue.path}")
    return plan


def test_it_syncs_and_calls_the_time_server():
    plan = sync("time", command=f"{PYTHON} -m mcp_server_time")
    assert plan.summary() == {
        "server": "time",
        "tools": 2,
        "added": 2,
        "updated": 0,
        "deactivated": 0,
    }
    tool = tool_get(name="get_current_time", source="mcp:time")
    assert tool.kind == Tool.Kind.MCP and tool.mcp_server.name == "time"
    assert tool.parameters["required"] == ["timezone"]
    answer = call("get_current_time", "time", timezone="Asia/Tokyo")
    assert answer["timezone"] == "Asia/Tokyo" and "+09:00" in answer["datetime"]
    with pytest.raises(ToolExecutionError, match="Invalid timezone"):
        call("get_current_time", "time", timezone="Mars/Olympus")
    # Bare server names work as --source too (what call_tool passes).
    assert tool_get(name="convert_time", source="time").source == "mcp:time"


def test_it_calls_the_git_server_on_a_repository(tmp_path):
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    (repo / "notes.txt").write_text("hello\n")
    sync("git", command=f"{PYTHON} -m mcp_server_git --repository {repo}")
    assert "git_status" in set(Tool.objects.filter(source="mcp:git").values_list("name", flat=True))
    status = call("git_status", "git", repo_path=str(repo))
    assert "notes.txt" in json.dumps(status)


def test_it_syncs_and_calls_server_everything_over_stdio(everything_js):
    plan = sync("everything", command=f"node {everything_js} stdio")
    names = {t.name for t in plan.tools}
    assert {"echo", "get-sum"} <= names
    assert call("echo", "everything", message="hi") == "Echo: hi"
    assert "42" in json.dumps(call("get-sum", "everything", a=40, b=2))


def test_it_syncs_and_calls_server_everything_over_streamable_http(everything_js):
    port = launcher.free_port()
    proc = subprocess.Popen(
        ["node", everything_js, "streamableHttp"],
        env={**os.environ, "PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}/mcp"
        Stack.wait_until(lambda: _listening(port), timeout=30, what="server-everything")
        plan = sync("everything-http", url=url)
        assert McpServer.objects.get(name="everything-http").transport == "http"
        assert "echo" in {t.name for t in plan.tools}
        assert call("echo", "everything-http", message="over http") == "Echo: over http"
    finally:
        SESSIONS.close()
        proc.kill()
        proc.wait()


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_a_sync_adds_updates_and_deactivates_and_never_deletes(changing, catalogue):
    assert changing.count("add") == 7
    catalogue(alpha="first, now changed", gamma="third")  # beta removed
    assert call("reload", "changing", notify=False) == {"result": "reloaded"}
    plan = mcp_server_sync(server=McpServer.objects.get(name="changing"))
    assert plan.summary() == {
        "server": "changing",
        "tools": 7,
        "added": 1,
        "updated": 1,
        "deactivated": 1,
    }
    beta = tool_get(name="beta", source="mcp:changing")
    assert beta.status == Tool.Status.INACTIVE
    with pytest.raises(ToolExecutionError, match="inactive"):
        tool_execute(tool=beta, arguments={"text": "x"})
    assert tool_get(name="alpha", source="mcp:changing").description == "first, now changed"
    assert call("gamma", "changing", text="hi") == {"result": "gamma: hi"}
    # beta comes back: the same row is active again.
    catalogue(alpha="first, now changed", beta="second", gamma="third")
    call("reload", "changing", notify=False)
    plan = mcp_server_sync(server=McpServer.objects.get(name="changing"))
    assert (plan.count("add"), plan.count("update"), len(plan.deactivate)) == (0, 1, 0)
    assert tool_get(name="beta", source="mcp:changing").pk == beta.pk
    assert Tool.objects.filter(source="mcp:changing").count() == 8


def test_the_session_is_reused_across_calls(changing):
    first = call("pid", "changing")
    assert call("pid", "changing") == first
    assert SESSIONS.open_sessions() == ["changing"]


@pytest.mark.django_db(transaction=True)
def test_a_tools_list_changed_notification_triggers_a_sync(changing, catalogue):
    # The sync runs in a helper thread of a process that forks (a worker): its writes
    # must hold off forks (tooltrail.forksafe), or a child forked meanwhile can start
    # with SQLite's mutexes held and hang.
    writes = []

    def saved(sender, instance, **kwargs):
        if threading.current_thread() is not threading.main_thread():
            writes.append((instance.name, forksafe._lock._is_owned()))

    post_save.connect(saved, sender=Tool)
    try:
        catalogue(alpha="first", beta="second", delta="fourth")
        call("reload", "changing", notify=True)
        Stack.wait_until(
            lambda: Tool.objects.filter(source="mcp:changing", name="delta").exists(),
            timeout=20,
            what="the sync after tools/list_changed",
        )
    finally:
        post_save.disconnect(saved, sender=Tool)
    assert ("delta", True) in writes
    assert all(held for _, held in writes)


def test_a_hanging_server_times_out_and_the_next_call_gets_a_fresh_session(changing):
    before = call("pid", "changing")
    hang = tool_get(name="hang", source="mcp:changing")
    hang.timeout_seconds = 1
    with pytest.raises(
        ToolTimeout, match=r"MCP server 'changing' \(tools/call hang\) did not answer within 1 s"
    ):
        tool_execute(tool=hang, arguments={"seconds": 30})
    assert call("pid", "changing") != before


def test_a_server_that_crashes_mid_call_gives_a_clear_error(changing):
    crash = tool_get(name="crash", source="mcp:changing")
    crash.timeout_seconds = 10
    with pytest.raises(ToolExecutionError, match="MCP server 'changing'"):
        tool_execute(tool=crash, arguments={})
    assert isinstance(call("pid", "changing")["result"], int)


def test_a_server_that_answers_garbage_gives_a_clear_error(changing):
    garbage = tool_get(name="garbage", source="mcp:changing")
    garbage.timeout_seconds = 1
    with pytest.raises(ToolExecutionError, match="MCP server 'changing'"):
        tool_execute(tool=garbage, arguments={})
    assert isinstance(call("pid", "changing")["result"], int)


def test_a_server_that_never_finishes_its_handshake_times_out_and_is_stopped(settings, tmp_path):
    settings.TOOLTRAIL_MCP_TIMEOUT_SECONDS = 1
    marker = tmp_path / "mute.pid"
    with pytest.raises(ToolTimeout, match="MCP server 'mute'"):
        sync("mute", command=f"sh -c 'echo $$ > {marker}; exec sleep 60'")
    pid = int(marker.read_text())
    Stack.wait_until(lambda: not _alive(pid), timeout=15, what="the mute server to be stopped")
    assert SESSIONS.open_sessions() == []
    assert not McpServer.objects.exists()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat").read_text().split()[2]
    return status != "Z"


def test_an_unreachable_server_is_a_clear_error_and_nothing_is_saved():
    with pytest.raises(ToolExecutionError, match="could not be started or reached.*No such file"):
        sync("ghost", command="/nonexistent/mcp-server")
    port = launcher.free_port()
    with pytest.raises(ToolExecutionError, match="MCP server 'ghost-http'"):
        sync("ghost-http", url=f"http://127.0.0.1:{port}/mcp")
    assert not McpServer.objects.exists()
    assert not Tool.objects.filter(kind=Tool.Kind.MCP).exists()


def test_a_listed_tool_with_a_schema_that_is_not_json_schema_is_named():
    listed = [{"name": "broken", "inputSchema": {"type": "not-a-type"}}]
    with pytest.raises(
        McpServerError, match="tool 'broken' of server 'x'.*not a valid JSON Schema"
    ):
        _plan(server_name="x", listed=listed, existing={})


def test_names_that_break_openais_rule_are_made_to_fit():
    listed = [{"name": "files.read/all", "inputSchema": {"type": "object"}}]
    plan = _plan(server_name="x", listed=listed, existing={})
    assert plan.tools[0].name == "files_read_all"
    assert plan.tools[0].config["mcp_name"] == "files.read/all"


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ({}, "either a command"),
        ({"command": "x", "url": "http://y"}, "not both"),
        ({"url": "ftp://y"}, "must start with http"),
    ],
)
def test_bad_server_input_is_refused(where, message):
    with pytest.raises(McpServerError, match=message):
        mcp_server_register(name="bad", **where)


def test_the_preview_saves_nothing(catalogue):
    server = mcp_server_register(name="changing", command=f"{PYTHON} {CHANGING} {catalogue.path}")
    plan = mcp_server_preview(server=server)
    assert {t.name for t in plan.tools} >= {"alpha", "beta", "reload"}
    assert not McpServer.objects.exists() and not Tool.objects.exists()


def test_the_mcp_sync_command_prints_its_summary_last(catalogue):
    out = StringIO()
    call_command(
        "mcp_sync",
        "--name",
        "changing",
        "--command",
        f"{PYTHON} {CHANGING} {catalogue.path}",
        stdout=out,
    )
    assert json.loads(out.getvalue().splitlines()[-1]) == {
        "server": "changing",
        "tools": 7,
        "added": 7,
        "updated": 0,
        "deactivated": 0,
    }
    out = StringIO()
    call_command("mcp_sync", "--name", "changing", stdout=out)
    assert json.loads(out.getvalue().splitlines()[-1])["added"] == 0
    with pytest.raises(CommandError, match="no MCP server named 'nobody'"):
        call_command("mcp_sync", "--name", "nobody")
