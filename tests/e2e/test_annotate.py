"""An annotator labels steps from the keyboard, item after item with no page reload,
while someone watching the trace sees the label appear live."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PASSWORD = "pw-for-tests-123"
SCREENSHOT = "/tmp/tooltrail-e2e-annotate.png"


def log_in(page: Page, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("link", name="Queues")).to_be_visible()


def test_keyboard_labelling_with_live_labels_on_the_trace_page(stack, browser, make_user):
    from traces.annotation_models import Annotation
    from traces.annotation_services import queue_create
    from traces.demo import RUNS, demo_run_record
    from traces.taxonomy import error_categories_seed

    error_categories_seed()
    trace = demo_run_record(input=RUNS[1]["input"], turns=RUNS[1]["turns"])
    ana = make_user("ana", role="annotator", password=PASSWORD)
    make_user("vic", role="viewer", password=PASSWORD)
    queue = queue_create(
        name="Clock calls", filter={"tool": "clock"}, step_kinds="tool_calls", annotators=[ana]
    )

    watcher = browser.new_context().new_page()
    log_in(watcher, stack.base_url, "vic")
    watcher.goto(f"{stack.base_url}/traces/{trace.id}/?step=2")
    expect(watcher.locator("html")).to_have_attribute("data-live", "open")
    expect(watcher.locator("#step-labels-2")).to_contain_text("No labels yet.")

    page = browser.new_context().new_page()
    page.set_default_timeout(15_000)
    log_in(page, stack.base_url, "ana")
    page.goto(f"{stack.base_url}/queues/{queue.id}/annotate/")
    panel = page.get_by_test_id("item-panel")
    expect(panel).to_have_attribute("data-seq", "2")
    page.evaluate("window.__sameDocument = true")

    page.keyboard.press("2")  # bad
    page.keyboard.press("w")  # the second category: wrong arguments
    page.keyboard.press("c")  # corrected call: focus goes to the tool name
    page.keyboard.type("clock")
    page.locator("textarea[name=corrected_arguments]").fill('{"timezone": "Europe/Paris"}')
    page.keyboard.press("Escape")
    page.keyboard.press("n")
    expect(panel).to_have_attribute("data-seq", "5")
    expect(page.get_by_test_id("mine-done")).to_have_text("1")
    assert page.evaluate("window.__sameDocument") is True  # no page reload

    expect(watcher.locator("#step-labels-2")).to_contain_text("Wrong arguments")
    expect(watcher.locator("#step-labels-2")).to_contain_text("clock")

    page.keyboard.press("1")
    page.keyboard.press("n")
    expect(panel).to_contain_text("Nothing left for you in this queue.")
    page.keyboard.press("b")
    expect(panel).to_have_attribute("data-seq", "5")
    assert page.evaluate("window.__sameDocument") is True
    page.screenshot(path=SCREENSHOT)

    labels = {a.step.seq: a for a in Annotation.objects.select_related("step", "category")}
    assert labels[2].verdict == "bad" and labels[2].category.slug == "wrong-arguments"
    assert labels[2].corrected_call == {"name": "clock", "arguments": {"timezone": "Europe/Paris"}}
    assert labels[5].verdict == "good"
