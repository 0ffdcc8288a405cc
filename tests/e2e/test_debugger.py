"""The trace debugger in a real browser: three linked views and the keyboard, a call in
progress shown live (and again after a reload), fork from a step, and the diff."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PASSWORD = "pw-for-tests-123"


def log_in(page: Page, stack, make_user) -> None:
    make_user("dora", role="annotator", password=PASSWORD)
    page.goto(f"{stack.base_url}/accounts/login/")
    page.get_by_label("Username").fill("dora")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("link", name="Agents")).to_be_visible()


def recorded(steps_spec):
    """A finished trace written through the service: [(kind, name, parent index, data)]."""
    from traces.services import step_record, trace_create, trace_finish, trace_start

    trace = trace_create(name="Recorded", input="17 * 23?")
    trace_start(trace_id=trace.id)
    made = []
    for kind, name, parent, data in steps_spec:
        made.append(
            step_record(
                trace_id=trace.id,
                kind=kind,
                name=name,
                parent=made[parent] if parent is not None else None,
                **data,
            )
        )
    return trace_finish(trace_id=trace.id, status="succeeded", output="391")


def selected_seq(page: Page) -> str:
    return page.locator("#step-detail article").get_attribute("data-seq")


def test_tree_timeline_and_panel_select_together_with_the_keyboard(stack, page, make_user):
    trace = recorded(
        [
            ("model_call", "scripted", None, {"output": {"content": "", "tool_calls": []}}),
            ("tool_call", "calculator", 0, {"input": {"expression": "17 * 23"}}),
            ("tool_result", "calculator", 1, {"output": {"result": 391}}),
            ("model_call", "scripted", None, {"output": {"content": "check"}}),
            ("tool_call", "echo", 3, {"input": {"text": "zebra"}}),
            ("error", "tool_error", 4, {"error": "echo failed: boom"}),
            ("final", "answer", 3, {"output": {"content": "391"}}),
        ]
    )
    log_in(page, stack, make_user)
    page.goto(f"{stack.base_url}/traces/{trace.id}/")
    expect(page.get_by_test_id("timeline")).to_have_attribute("data-rows", "7")
    # Error markers and counts bubble up to the collapsed parent.
    expect(page.locator("#step-4 .sub")).to_have_text("3 · 1 err")

    page.locator("#step-2 > a").click()
    expect(page.locator("#step-detail")).to_contain_text("17 * 23")
    expect(page).to_have_url(re.compile(r"\?step=2$"))

    page.keyboard.press("j")
    expect(page.locator("#step-3")).to_have_class(re.compile("is-selected"))
    expect(page.locator("#step-detail article")).to_have_attribute("data-seq", "3")
    expect(page).to_have_url(re.compile(r"\?step=3$"))
    page.keyboard.press("e")
    expect(page.locator("#step-detail article")).to_have_attribute("data-seq", "6")
    page.keyboard.press("k")
    expect(page.locator("#step-detail article")).to_have_attribute("data-seq", "5")

    # A click on the first bar of the timeline selects step 1 in the tree and the panel.
    page.get_by_test_id("timeline").click(position={"x": 5, "y": 18 + 6})
    expect(page.locator("#step-1")).to_have_class(re.compile("is-selected"))
    expect(page.locator("#step-detail article")).to_have_attribute("data-seq", "1")

    page.keyboard.press("/")
    page.keyboard.type("zebra")
    page.keyboard.press("Enter")
    expect(page.locator("#step-detail article")).to_have_attribute("data-seq", "5")

    # Folding step 4 hides its subtree; j skips it.
    page.locator("#step-4 > button.fold").click()
    expect(page.locator("#step-5")).to_be_hidden()
    expect(page.get_by_test_id("timeline")).to_have_attribute("data-rows", "4")

    # The selected step is in the URL: a reload (or a shared link) opens it.
    page.goto(f"{stack.base_url}/traces/{trace.id}/?step=6")
    expect(page.locator("#step-6")).to_have_class(re.compile("is-selected"))
    expect(page.locator("#step-detail")).to_contain_text("echo failed: boom")
    page.screenshot(path="/tmp/tooltrail-e2e-debugger.png", full_page=True)


def test_a_slow_tool_call_shows_as_running_even_after_a_reload(
    stack, page, make_user, scripted_agent
):
    from agents.services import agent_run_start

    agent = scripted_agent(
        [
            {"content": "", "tool_calls": [{"name": "sleep", "arguments": {"seconds": 4}}]},
            {"content": "rested"},
        ]
    )
    log_in(page, stack, make_user)
    trace = agent_run_start(agent=agent, input="rest a while")
    page.goto(f"{stack.base_url}/traces/{trace.id}/")
    running = page.get_by_test_id("running-call")
    expect(running).to_contain_text("sleep", timeout=20_000)
    expect(running.locator(".dur")).to_have_text(re.compile(r"running \d+\.\d s…"))
    page.reload()
    expect(page.get_by_test_id("running-call")).to_contain_text("sleep")
    expect(page.locator("#trace-status")).to_have_attribute(
        "data-status", "succeeded", timeout=20_000
    )
    expect(page.get_by_test_id("running-call")).to_have_count(0)
    expect(page.locator("li.step.kind-tool_result")).to_have_count(1)


def test_fork_a_tool_call_with_new_arguments_then_diff_the_two_runs(
    stack, page, make_user, scripted_agent
):
    from agents.services import agent_run_start
    from traces.models import Trace

    agent = scripted_agent(
        [
            {
                "content": "",
                "tool_calls": [{"name": "calculator", "arguments": {"expression": "2 + 2"}}],
            },
            {"content": "done"},
        ]
    )
    log_in(page, stack, make_user)
    first = agent_run_start(agent=agent, input="add")
    stack.wait_until(
        lambda: Trace.objects.get(pk=first.pk).is_finished, what="the first run to finish"
    )

    page.goto(f"{stack.base_url}/traces/{first.id}/?step=2")
    page.get_by_test_id("fork-open").click()
    page.locator("#step-detail textarea").fill('{"expression": 12}')
    page.get_by_test_id("fork-submit").click()
    expect(page.locator(".messages")).to_contain_text("schema")

    page.get_by_test_id("fork-open").click()
    page.locator("#step-detail textarea").fill('{"expression": "6 * 7"}')
    page.get_by_test_id("fork-submit").click()
    page.wait_for_url(re.compile(r"/traces/(?!" + str(first.id) + ")"))
    expect(page.locator("#trace-status")).to_have_attribute(
        "data-status", "succeeded", timeout=20_000
    )
    expect(page.locator("#trace-summary")).to_contain_text("Forked from")
    expect(page.locator("#step-3")).to_contain_text("42")

    second = Trace.objects.get(forked_from=first)
    page.goto(f"{stack.base_url}/traces/diff/?a={first.id}&b={second.id}")
    expect(page.get_by_test_id("diff-summary")).to_have_text("1 of 1 tool call differ.")
    row = page.get_by_test_id("diff-row")
    expect(row).to_have_class(re.compile("changed"))
    expect(row.locator("td.b pre.diff-field").first).to_contain_text("6 * 7")


def test_spans_that_arrive_before_their_parent_move_under_it_live(stack, page, make_user):
    from datetime import UTC, datetime, timedelta

    from traces.ingest.mapping import StepRecord
    from traces.services import steps_record_bulk, trace_create, trace_start

    t0 = datetime.now(UTC)

    def span(span_id: str, parent: str, at: int, kind: str = "tool_call") -> StepRecord:
        return StepRecord(
            otel_trace_id="",
            span_id=span_id * 16,
            parent_span_id=parent * 16 if parent else "",
            kind=kind,
            name=f"span-{span_id}",
            started_at=t0 + timedelta(seconds=at),
            ended_at=t0 + timedelta(seconds=at + 1),
        )

    trace = trace_create(name="Ingested", input="out of order")
    trace_start(trace_id=trace.id)
    log_in(page, stack, make_user)
    page.goto(f"{stack.base_url}/traces/{trace.id}/")
    expect(page.locator("html")).to_have_attribute("data-live", "open")

    # A tool span and its child come first; their parent (an agent span) later.
    steps_record_bulk(trace_id=trace.id, records=[span("c", "a", 2), span("d", "c", 3)])
    expect(page.locator("#step-2")).to_have_attribute("data-depth", "1")
    expect(page.locator("#step-1")).to_have_attribute("data-parent", "")
    steps_record_bulk(trace_id=trace.id, records=[span("a", "", 1, kind="agent")])

    expect(page.locator("#step-1")).to_have_attribute("data-parent", "3")
    expect(page.locator("#step-1")).to_have_attribute("data-depth", "1")
    expect(page.locator("#step-2")).to_have_attribute("data-depth", "2")
    expect(page.locator("#step-3 .sub")).to_have_text("2")
    # What a reload shows is the same tree.
    page.reload()
    expect(page.locator("#step-1")).to_have_attribute("data-parent", "3")
    expect(page.locator("#step-2")).to_have_attribute("data-depth", "2")
    expect(page.locator("#step-3 .sub")).to_have_text("2")
