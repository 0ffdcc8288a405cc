"""A person runs an agent in the browser and watches its steps arrive live, through a
server restart in the middle of the run."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PASSWORD = "pw-for-tests-123"
SCREENSHOT = "/tmp/tooltrail-e2e-live-trace.png"
SCREENSHOT_DISCONNECTED = "/tmp/tooltrail-e2e-disconnected.png"


def shown_seqs(page: Page) -> list[int]:
    return [
        int(n)
        for n in page.locator("li[data-seq]").evaluate_all("nodes => nodes.map(n => n.dataset.seq)")
    ]


def test_steps_stream_in_live_and_catch_up_after_the_server_restarts(
    stack, page: Page, make_user, scripted_agent
):
    from traces.models import Step, Trace

    turns = 12
    agent = scripted_agent(
        [
            {
                "content": f"Step {n} of the sum.",
                "tool_calls": [{"name": "calculator", "arguments": {"expression": f"{n} * 7"}}],
                "delay_ms": 400,
                "prompt_tokens": 40,
                "completion_tokens": 9,
            }
            for n in range(1, turns + 1)
        ]
        + [{"content": "All twelve products are done.", "delay_ms": 200}],
        max_steps=turns + 1,
        slug="slow-calculator",
    )
    make_user("eve", role="annotator", password=PASSWORD)

    page.goto(f"{stack.base_url}/accounts/login/")
    page.get_by_label("Username").fill("eve")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("link", name="Agents")).to_be_visible()

    page.goto(f"{stack.base_url}/agents/{agent.slug}/")
    page.get_by_label("Input").fill("Multiply one to twelve by seven")
    page.get_by_test_id("run").click()
    page.wait_for_url("**/traces/*/")
    trace = Trace.objects.get(agent_slug=agent.slug)
    expect(page.locator("h1")).to_contain_text(agent.name)
    # A reload would clear this mark: every later step must come over the socket.
    page.evaluate("window.__sameDocument = true")

    expect(page.locator("html")).to_have_attribute("data-live", "open")
    stack.wait_until(lambda: len(shown_seqs(page)) >= 4, what="steps to appear live")
    expect(page.locator("#trace-status")).to_have_attribute("data-status", "running")

    stack.kill_daphne()
    expect(page.locator("html")).to_have_attribute("data-live", "closed")
    shown_while_down = shown_seqs(page)
    page.screenshot(path=SCREENSHOT_DISCONNECTED)
    # The run goes on while the browser is cut off; those steps must arrive later.
    stack.wait_until(
        lambda: Step.objects.filter(trace=trace).count() >= max(shown_while_down) + 3,
        what="the worker to save steps while the server is down",
    )
    assert Trace.objects.get(pk=trace.pk).status == Trace.Status.RUNNING, "restart came too late"
    stack.start_daphne()

    expect(page.locator("#trace-status")).to_have_attribute(
        "data-status", "succeeded", timeout=30_000
    )
    trace.refresh_from_db()
    expect(page.locator("li[data-seq]")).to_have_count(trace.step_count)
    saved = list(Step.objects.filter(trace=trace).order_by("seq").values_list("seq", flat=True))
    assert saved == list(range(1, 3 * turns + 3))
    assert sorted(shown_seqs(page)) == saved  # every step once: no gap, no duplicate
    assert page.evaluate("window.__sameDocument") is True
    expect(page.get_by_test_id("step-count")).to_have_text(str(trace.step_count))
    expect(page.locator(".answer")).to_have_text("All twelve products are done.")
    page.locator("li[data-seq='2'] > a").click()
    expect(page.locator("#step-detail")).to_contain_text("calculator")
    page.screenshot(path=SCREENSHOT, full_page=True)
