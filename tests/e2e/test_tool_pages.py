"""A person imports an MCP server (preview, then save) and has a model write a code tool
that they activate, in the browser against the running server."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PASSWORD = "pw-for-tests-123"
CHANGING = Path(__file__).resolve().parents[1] / "toolsapp" / "servers" / "changing_mcp.py"


def log_in(page: Page, stack, make_user) -> None:
    make_user("ada", role="admin", password=PASSWORD)
    page.goto(f"{stack.base_url}/accounts/login/")
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.goto(f"{stack.base_url}/tools/")


def test_an_mcp_server_is_previewed_then_saved(stack, page: Page, make_user, tmp_path):
    from toolsapp.models import McpServer, Tool

    catalogue = tmp_path / "tools.json"
    catalogue.write_text('[{"name": "alpha", "description": "The first tool."}]')
    log_in(page, stack, make_user)
    page.get_by_role("link", name="Import an MCP server").click()
    page.get_by_label("Name").fill("changing")
    page.get_by_label("Command (stdio)").fill(f"{sys.executable} {CHANGING} {catalogue}")
    page.get_by_test_id("mcp-preview").click()
    plan = page.get_by_test_id("mcp-plan")
    expect(plan).to_contain_text("alpha")
    expect(plan).to_contain_text("The first tool.")
    assert not McpServer.objects.exists()
    page.get_by_test_id("mcp-save").click()
    expect(page.locator("ul.messages")).to_contain_text("6 tools, 6 added")
    assert Tool.objects.get(source="mcp:changing", name="alpha").status == Tool.Status.ACTIVE


def test_a_model_writes_a_code_tool_and_a_person_activates_it(stack, page: Page, make_user):
    from agents.models import ModelEndpoint
    from toolsapp.models import Tool

    spec = {
        "name": "word_count",
        "description": "Count the words in a text.",
        "parameters": {"type": "object", "properties": {"text": {"type": "string"}}},
        "function": "word_count",
        "source": "def word_count(text):\n    return len(text.split())\n",
    }
    ModelEndpoint.objects.create(
        name="maker", kind="scripted", config={"script": [{"content": json.dumps(spec)}]}
    )
    log_in(page, stack, make_user)
    page.get_by_role("link", name="Make a tool with a model").click()
    page.get_by_label("Task").fill("Count the words in a text")
    page.get_by_label("Examples").fill(
        json.dumps([{"arguments": {"text": "one two three"}, "expected": 3}])
    )
    page.get_by_test_id("maker-submit").click()
    expect(page.get_by_test_id("code-status")).to_have_text("Draft")
    expect(page.get_by_test_id("code-results")).to_contain_text("passed")
    page.get_by_test_id("code-activate").click()
    expect(page.get_by_test_id("code-status")).to_have_text("Active")
    assert Tool.objects.get(name="word_count").status == Tool.Status.ACTIVE
