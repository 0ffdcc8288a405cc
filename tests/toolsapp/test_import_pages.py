"""The MCP import page (preview, then save) and the code tool page (activate)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from toolsapp.codetools import code_tool_save
from toolsapp.mcpclient import SESSIONS
from toolsapp.models import McpServer, Tool

pytestmark = pytest.mark.django_db

CHANGING = Path(__file__).resolve().parent / "servers" / "changing_mcp.py"


@pytest.fixture(autouse=True)
def _close_sessions():
    yield
    SESSIONS.close()


@pytest.fixture
def admin_client(client, make_user):
    client.force_login(make_user("root", role="admin"))
    return client


def form(tmp_path, **fields):
    tools = tmp_path / "tools.json"
    tools.write_text('[{"name": "alpha", "description": "the first tool"}]')
    return {
        "name": "changing",
        "transport": "stdio",
        "command": f"{sys.executable} {CHANGING} {tools}",
        **fields,
    }


def test_the_preview_lists_the_tools_and_saves_nothing_then_save_syncs(admin_client, tmp_path):
    page = admin_client.post("/tools/mcp/import/", {**form(tmp_path), "action": "preview"})
    assert page.status_code == 200
    html = page.content.decode()
    assert "Preview: 6 tools" in html and "the first tool" in html and "added" in html
    assert not McpServer.objects.exists() and not Tool.objects.exists()
    saved = admin_client.post(
        "/tools/mcp/import/", {**form(tmp_path), "action": "save"}, follow=True
    )
    assert "6 tools, 6 added, 0 updated, 0 deactivated" in saved.content.decode()
    assert Tool.objects.filter(source="mcp:changing", name="alpha").exists()


def test_an_unreachable_server_is_a_400_with_the_reason(admin_client, tmp_path):
    page = admin_client.post(
        "/tools/mcp/import/", {**form(tmp_path, command="/nonexistent/server"), "action": "preview"}
    )
    assert page.status_code == 400
    assert "could not be started or reached" in page.content.decode()
    assert not McpServer.objects.exists()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "bad name!"}, "must be letters"),
        ({"transport": "http", "url": "ftp://x"}, "must start with http"),
        ({"env": "NOT A PAIR"}, "environment line 1 is not KEY=VALUE"),
    ],
)
def test_bad_import_input_is_a_400(admin_client, tmp_path, fields, message):
    page = admin_client.post(
        "/tools/mcp/import/", {**form(tmp_path, **fields), "action": "preview"}
    )
    assert page.status_code == 400
    assert message in page.content.decode()


def test_a_viewer_cannot_import(client, make_user, tmp_path):
    client.force_login(make_user("vic", role="viewer"))
    assert client.get("/tools/mcp/import/").status_code == 403
    page = client.post("/tools/mcp/import/", {**form(tmp_path), "action": "save"})
    assert page.status_code == 403
    assert not McpServer.objects.exists()


def _draft(source: str) -> Tool:
    return code_tool_save(
        name="double",
        description="Double a number.",
        parameters={"type": "object", "properties": {"n": {"type": "integer"}}},
        source=source,
        function="double",
        tests=[{"arguments": {"n": 2}, "expected": 4}],
    )


def test_activating_a_code_tool_from_its_page(admin_client):
    _draft("def double(n):\n    return n * 2\n")
    page = admin_client.get("/tools/code/double/")
    assert "Run the tests and activate" in page.content.decode()
    done = admin_client.post("/tools/code/double/activate/", follow=True)
    assert "All 1 test cases passed: double is active." in done.content.decode()
    assert Tool.objects.get(name="double").status == Tool.Status.ACTIVE


def test_a_failing_code_tool_stays_a_draft_and_the_page_says_why(admin_client):
    _draft("def double(n):\n    return n + 1\n")
    done = admin_client.post("/tools/code/double/activate/", follow=True)
    html = done.content.decode()
    assert "1 of 1 test cases failed; it stays a draft" in html and "got 3, expected 4" in html
    assert Tool.objects.get(name="double").status == Tool.Status.DRAFT


def test_a_viewer_cannot_activate(client, make_user):
    _draft("def double(n):\n    return n * 2\n")
    client.force_login(make_user("vic", role="viewer"))
    assert client.post("/tools/code/double/activate/").status_code == 403
    assert Tool.objects.get(name="double").status == Tool.Status.DRAFT
