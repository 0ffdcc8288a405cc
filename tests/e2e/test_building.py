"""A builder makes an endpoint, tests it, picks tools into a toolset, makes an agent,
runs it, runs it again, and follows a number on the dashboard to the runs behind it."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import Page, expect

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PASSWORD = "pw-for-tests-123"
SCRIPT = [
    {
        "content": "Multiplying.",
        "tool_calls": [{"name": "calculator", "arguments": {"expression": "17 * 23"}}],
        "delay_ms": 100,
        "prompt_tokens": 100,
        "completion_tokens": 10,
    },
    {"content": "17 * 23 = 391", "delay_ms": 100, "prompt_tokens": 120, "completion_tokens": 8},
]


def test_a_builder_builds_runs_and_reruns_an_agent_then_reads_the_dashboard(
    stack, page: Page, make_user, demo_agents
):
    from traces.models import Trace

    make_user("bob", role="builder", password=PASSWORD)
    page.goto(f"{stack.base_url}/accounts/login/")
    page.get_by_label("Username").fill("bob")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("h1")).to_have_text("Dashboard")

    # An endpoint, with a mistake first.
    page.goto(f"{stack.base_url}/endpoints/")
    page.get_by_test_id("new-endpoint").click()
    page.get_by_label("Name", exact=True).fill("e2e-script")
    page.get_by_label("Kind").select_option("scripted")
    page.get_by_label("Config").fill("{not json")
    page.get_by_test_id("save").click()
    expect(page.locator(".field-error").first).to_contain_text("Enter a valid JSON")
    page.get_by_label("Config").fill(json.dumps({"script": SCRIPT}))
    page.get_by_label("Price per 1k prompt tokens").fill("0.5")
    page.get_by_test_id("save").click()
    expect(page.locator("h1")).to_have_text("e2e-script")
    page.get_by_test_id("test-connection").click()
    expect(page.locator(".msg-success")).to_contain_text("Connection OK in")

    # A toolset, picking the calculator found by search.
    page.goto(f"{stack.base_url}/toolsets/new/")
    page.get_by_label("Name", exact=True).fill("Maths")
    page.get_by_label("Slug", exact=True).fill("maths")
    page.locator("#tool-search").fill("arithmetic")
    expect(page.locator("#tool-picker label:visible")).to_have_count(1)
    page.locator("#tool-picker label:visible input").check()
    page.get_by_test_id("save").click()
    expect(page.locator("h1")).to_have_text("Maths")
    expect(page.get_by_role("link", name="calculator")).to_be_visible()

    # An agent with that endpoint and toolset.
    page.goto(f"{stack.base_url}/agents/")
    page.get_by_test_id("new-agent").click()
    page.get_by_label("Name", exact=True).fill("Multiplier")
    page.get_by_label("Slug", exact=True).fill("multiplier")
    page.get_by_label("Endpoint").select_option(label="e2e-script (Scripted (recorded replies))")
    page.get_by_label("Toolset").select_option(label="Maths")
    page.get_by_label("System prompt").fill("Use the calculator.")
    page.get_by_test_id("save").click()
    expect(page.locator("h1")).to_have_text("Multiplier")
    expect(page.get_by_role("link", name="v1")).to_be_visible()

    # Run it, and watch it succeed.
    page.get_by_label("Input").fill("what is 17 * 23")
    page.get_by_test_id("run").click()
    page.wait_for_url("**/traces/*/")
    expect(page.locator("#trace-status")).to_contain_text("Succeeded", timeout=30_000)
    first = Trace.objects.get(agent_slug="multiplier")
    expect(page.get_by_test_id("agent-version")).to_have_text("Agent v1")

    # Run again, with the same input.
    page.reload()
    page.get_by_test_id("run-again").click()
    page.wait_for_url(lambda url: str(first.id) not in url)
    expect(page.locator("#trace-status")).to_contain_text("Succeeded", timeout=30_000)
    again = Trace.objects.exclude(pk=first.pk).get(agent_slug="multiplier")
    assert again.input == first.input and again.metadata["rerun_of"] == str(first.id)

    # The dashboard counts both runs; the number opens the agent's runs.
    page.goto(f"{stack.base_url}/?period=24h")
    agents_table = page.get_by_test_id("by-agent")
    row = agents_table.locator("tr", has_text="multiplier")
    expect(row.locator("td").nth(1)).to_have_text("2")
    expect(page.locator("#runs-chart")).to_be_visible()
    row.locator("td").nth(1).get_by_role("link").click()
    page.wait_for_url("**/traces/?*agent=multiplier*")
    expect(page.locator(f"#trace-row-{first.id}")).to_be_visible()
    expect(page.locator(f"#trace-row-{again.id}")).to_be_visible()
