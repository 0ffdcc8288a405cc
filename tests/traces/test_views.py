"""The pages: login everywhere, the trace tree without JavaScript, escaping, roles, admin."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from django.contrib import admin

from traces.models import Trace
from traces.services import trace_create

pytestmark = pytest.mark.django_db


class StepTree(HTMLParser):
    """Reads the rendered step tree: for each ``li#step-N``, the seq of its parent step."""

    def __init__(self) -> None:
        super().__init__()
        self.parents: dict[int, int | None] = {}

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        seq = attributes.get("data-seq")
        if tag == "li" and seq is not None and (attributes.get("id") or "").startswith("step-"):
            parent = attributes.get("data-parent") or None
            self.parents[int(seq)] = int(parent) if parent else None


def tree_of(html: str) -> dict[int, int | None]:
    parser = StepTree()
    parser.feed(html)
    return parser.parents


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


@pytest.fixture
def annotator(client, make_user):
    user = make_user("anna", "annotator")
    client.force_login(user)
    return user


@pytest.fixture
def viewer(client, make_user):
    user = make_user("vic", "viewer")
    client.force_login(user)
    return user


# --- login --------------------------------------------------------------------------------


def test_every_page_sends_an_anonymous_visitor_to_the_login_page(
    client, recorded_trace, demo_agents
):
    trace, _ = recorded_trace
    pages = [
        "/",
        "/traces/",
        f"/traces/{trace.id}/",
        f"/traces/{trace.id}/steps/3/",
        "/agents/",
        "/agents/demo/",
        "/tools/",
        "/tools/calculator/",
        "/tokens/",
        "/admin/",
    ]
    for page in pages:
        response = client.get(page)
        assert response.status_code == 302, page
        assert response["Location"].startswith("/accounts/login/?next="), page


def test_an_anonymous_post_starts_and_cancels_nothing(client, recorded_trace, demo_agents):
    trace, _ = recorded_trace
    run = client.post("/agents/demo/run/", {"input": "hi"})
    cancel = client.post(f"/traces/{trace.id}/cancel/")
    assert run["Location"].startswith("/accounts/login/")
    assert cancel["Location"].startswith("/accounts/login/")
    assert Trace.objects.count() == 1
    trace.refresh_from_db()
    assert not trace.cancel_requested


def test_the_login_page_itself_is_open(client):
    assert client.get("/accounts/login/").status_code == 200


def test_a_person_signs_in_with_a_password_and_lands_on_the_dashboard(client, make_user):
    make_user("erin", "viewer", password="a-long-password-1")
    response = client.post(
        "/accounts/login/", {"username": "erin", "password": "a-long-password-1"}, follow=True
    )
    assert response.redirect_chain[-1][0] == "/"
    assert "<h1>Dashboard</h1>" in response.content.decode()
    assert response.context["user"].username == "erin"


# --- the trace page -----------------------------------------------------------------------


def test_the_trace_page_shows_every_saved_step_as_a_tree_without_javascript(
    client, viewer, recorded_trace
):
    trace, _ = recorded_trace
    response = client.get(f"/traces/{trace.id}/")
    assert response.status_code == 200
    # #2 under #1, #3 under #2, #4 under #1: the nesting is in the HTML itself.
    assert tree_of(response.content.decode()) == {1: None, 2: 1, 3: 2, 4: 1}
    assert 'href="?step=3"' in response.content.decode()


def test_tool_output_with_markup_is_shown_escaped_never_raw(client, viewer, recorded_trace):
    trace, _ = recorded_trace
    for url in (f"/traces/{trace.id}/", f"/traces/{trace.id}/?step=3"):
        html = client.get(url).content.decode()
        assert "<script>alert(1)</script>" not in html, url
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, url
    assert "<b>hi</b>" not in client.get(f"/traces/{trace.id}/").content.decode()


def test_a_step_link_without_javascript_opens_the_step_on_the_page(client, viewer, recorded_trace):
    trace, _ = recorded_trace
    response = client.get(f"/traces/{trace.id}/steps/3/")
    assert response.status_code == 302
    assert response["Location"] == f"/traces/{trace.id}/?step=3"
    page = client.get(response["Location"])
    assert page.context["selected"].seq == 3
    assert re.search(r'<article[^>]*data-seq="3"', page.content.decode())


def test_htmx_gets_only_the_step_detail_fragment(client, viewer, recorded_trace):
    trace, _ = recorded_trace
    response = client.get(f"/traces/{trace.id}/steps/2/", HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith("<article")
    assert "<html" not in html
    assert 'data-seq="2"' in html
    assert "Schema of echo" not in html  # this call was recorded without a schema
    assert "#1 Model call" in html  # its parent
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert(1)</script>" not in html


def test_an_unknown_step_is_not_found(client, viewer, recorded_trace):
    trace, _ = recorded_trace
    assert client.get(f"/traces/{trace.id}/steps/99/", HTTP_HX_REQUEST="true").status_code == 404


def test_the_trace_list_shows_the_traces_and_filters_by_status(client, viewer, recorded_trace):
    trace, _ = recorded_trace
    other = trace_create(name="Still waiting", input="x")
    page = client.get("/traces/")
    assert page.status_code == 200
    assert {t.id for t in page.context["traces"]} == {trace.id, other.id}
    queued = client.get("/traces/?status=queued")
    assert [t.id for t in queued.context["traces"]] == [other.id]


# --- roles: starting and cancelling from the UI ---------------------------------------------


def test_a_viewer_cannot_start_a_run_from_the_agent_page(client, viewer, demo_agents):
    page = client.get("/agents/demo/")
    assert 'data-testid="run"' not in page.content.decode()
    response = client.post("/agents/demo/run/", {"input": "What is 2+2?"}, follow=True)
    assert response.redirect_chain[-1][0] == "/agents/demo/"
    assert "Your role (viewer) cannot start runs." in messages_of(response)
    assert not Trace.objects.exists()


def test_an_annotator_starts_a_run_and_lands_on_its_trace(client, annotator, demo_agents):
    page = client.get("/agents/demo/")
    assert 'data-testid="run"' in page.content.decode()
    response = client.post("/agents/demo/run/", {"input": "What is 2+2?"})
    trace = Trace.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/traces/{trace.id}/"
    assert (trace.status, trace.input, trace.created_by) == ("queued", "What is 2+2?", annotator)


def test_an_empty_run_input_is_explained_and_nothing_starts(client, annotator, demo_agents):
    response = client.post("/agents/demo/run/", {"input": "  "}, follow=True)
    assert "the input is empty: say what the agent should do" in messages_of(response)
    assert not Trace.objects.exists()


def test_a_viewer_cannot_cancel_a_run(client, viewer, recorded_trace):
    trace, _ = recorded_trace
    page = client.get(f"/traces/{trace.id}/")
    assert 'data-testid="cancel"' not in page.content.decode()
    response = client.post(f"/traces/{trace.id}/cancel/", follow=True)
    assert "Your role (viewer) cannot cancel runs." in messages_of(response)
    trace.refresh_from_db()
    assert (trace.status, trace.cancel_requested) == ("running", False)


def test_an_annotator_cancels_a_run_after_confirming_and_the_badge_says_what_the_message_says(
    client, annotator, recorded_trace
):
    trace, _ = recorded_trace
    page = client.get(f"/traces/{trace.id}/").content.decode()
    assert 'data-testid="cancel"' in page
    assert "return confirm(" in page
    response = client.post(f"/traces/{trace.id}/cancel/", follow=True)
    [message] = messages_of(response)
    assert "“Cancelling…”" in message
    assert 'data-testid="status">Cancelling…</span>' in response.content.decode()
    trace.refresh_from_db()
    assert trace.cancel_requested


def test_cancelling_a_finished_run_says_so(client, annotator):
    trace = trace_create(name="q", input="x")
    client.post(f"/traces/{trace.id}/cancel/")
    response = client.post(f"/traces/{trace.id}/cancel/", follow=True)
    assert "trace is already cancelled" in messages_of(response)


# --- tools and agents pages -----------------------------------------------------------------


def test_the_tool_pages_show_each_tool_and_its_schema(client, viewer, demo_agents):
    listing = client.get("/tools/").content.decode()
    for name in ("calculator", "clock", "echo", "sleep", "unit_convert"):
        assert name in listing
    detail = client.get("/tools/calculator/")
    assert detail.status_code == 200
    assert "&quot;expression&quot;" in detail.content.decode()
    assert client.get("/tools/no-such-tool/").status_code == 404


# --- admin ----------------------------------------------------------------------------------


def test_every_admin_changelist_loads_for_a_superuser(
    client, make_user, recorded_trace, demo_agents
):
    trace, steps = recorded_trace
    client.force_login(make_user("root", "admin"))
    for model in admin.site._registry:
        url = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        assert client.get(url).status_code == 200, url
    assert client.get(f"/admin/traces/trace/{trace.id}/change/").status_code == 200
    assert client.get(f"/admin/traces/step/{steps[2].id}/change/").status_code == 200
    assert client.get(f"/admin/agents/agent/{demo_agents['demo'].id}/change/").status_code == 200


def test_the_admin_is_closed_to_an_annotator(client, annotator):
    response = client.get("/admin/traces/trace/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_a_live_step_lands_under_its_parent_with_markup_escaped(recorded_trace):
    from traces.rendering import step_live_html

    _, (_, _, result, _) = recorded_trace
    html = step_live_html(result)
    assert 'hx-swap-oob="beforeend:#steps"' in html
    assert tree_of(html) == {3: 2}
    assert 'data-depth="2"' in html
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'data-cursor="3"' in html


def test_a_later_model_call_shows_the_whole_conversation_it_was_sent(
    client, viewer, recorded_trace
):
    from traces.models import Step
    from traces.services import step_record

    trace, (model, *_rest) = recorded_trace
    later = step_record(
        trace_id=trace.id,
        kind=Step.Kind.MODEL_CALL,
        name="scripted",
        input={
            "messages": [
                {"role": "assistant", "content": "calling echo"},
                {"role": "tool", "tool_call_id": "c1", "content": "<i>echoed</i>"},
            ],
            "earlier_messages": 1,
            "earlier_from_step": model.seq,
        },
        output={"content": "done"},
    )

    html = client.get(
        f"/traces/{trace.id}/steps/{later.seq}/", HTTP_HX_REQUEST="true"
    ).content.decode()

    assert "Input (new since the previous model call)" in html
    assert "Whole conversation sent to the model (3 messages)" in html
    assert "Say &lt;b&gt;hi&lt;/b&gt;" in html  # the first message, from step #1
    assert "<i>echoed</i>" not in html
    first = client.get(f"/traces/{trace.id}/steps/{model.seq}/", HTTP_HX_REQUEST="true")
    assert "Whole conversation" not in first.content.decode()


def test_the_trace_list_pages_by_keyset_and_keeps_the_filters(client, viewer):
    for n in range(51):
        trace_create(name=f"run {n}", input="x", agent_slug="demo")
    trace_create(name="other agent", input="x", agent_slug="other")

    html = client.get("/traces/?agent=demo&status=queued").content.decode()

    assert 'ws-connect="/ws/traces/?status=queued&amp;agent=demo&amp;page=1"' in html
    assert "other agent" not in html
    assert html.count('name="ids"') == 50
    older = re.search(r'href="(\?before=[^"]+)" data-testid="older"', html).group(1)
    assert "status=queued" in older and "agent=demo" in older
    second = client.get("/traces/" + older.replace("&amp;", "&")).content.decode()
    assert second.count('name="ids"') == 1
    assert "run 0<" in second
    assert "← Newer" in second
    # A later page is not told of new runs (they belong on the first).
    assert "page=2" in re.search(r'ws-connect="([^"]+)"', second).group(1)


def test_a_long_trace_shows_its_first_screen_and_links_to_the_next_steps(client, viewer):
    from traces.models import Step
    from traces.services import step_record, trace_start

    trace = trace_create(name="long", input="x")
    trace_start(trace_id=trace.id)
    model = step_record(trace_id=trace.id, kind=Step.Kind.MODEL_CALL, name="m")
    for n in range(249):
        step_record(trace_id=trace.id, kind=Step.Kind.TOOL_CALL, name=f"t{n}", parent=model)

    first = client.get(f"/traces/{trace.id}/").content.decode()
    assert len(tree_of(first)) == 200
    assert 'href="?after=200" data-testid="more-steps"' in first
    rest = client.get(f"/traces/{trace.id}/?after=200").content.decode()
    assert sorted(tree_of(rest)) == list(range(201, 251))
    assert set(tree_of(rest).values()) == {1}  # still drawn under their parent, one level in
    assert 'data-depth="1"' in rest
    assert "more-steps" not in rest
    # Non-ASCII digits and huge numbers are ignored, not a 500.
    assert client.get(f"/traces/{trace.id}/?after=²&step=99999999999").status_code == 200
