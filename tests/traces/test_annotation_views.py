"""The annotation pages: queues, the annotator's page (htmx), adjudication, export."""

from __future__ import annotations

import pytest

from traces.annotation_models import Annotation, AnnotationQueue, Export, QueueAssignment
from traces.annotation_services import queue_create

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def clock_queue(schema_trace, make_user):
    ana = make_user("ana")
    queue = queue_create(
        name="Clock calls",
        filter={"tool": "clock"},
        step_kinds="tool_calls",
        annotators=[ana],
        instructions="Judge the <b>arguments</b>.",
    )
    return queue, ana


def test_the_annotator_page_shows_one_item_with_its_context_schema_and_keys(client, clock_queue):
    queue, ana = clock_queue
    client.force_login(ana)
    page = client.get(f"/queues/{queue.id}/annotate/").content.decode()
    assert 'data-seq="2"' in page and "#2 · Tool call" in page
    assert "Schema of clock" in page and "&quot;timezone&quot;" in page
    assert "Judge the &lt;b&gt;arguments&lt;/b&gt;." in page  # instructions, escaped
    assert "js/annotate.js" in page and "<kbd>n</kbd> Save &amp; next" in page
    assert 'data-key="q"' in page and "Wrong tool" in page  # categories have keys
    assert "Queue 0 / 2 done" in page


def test_saving_with_htmx_answers_the_next_item_only_no_page(client, clock_queue):
    queue, ana = clock_queue
    client.force_login(ana)
    client.get(f"/queues/{queue.id}/annotate/")
    first = QueueAssignment.objects.get(user=ana)
    response = client.post(
        f"/queues/{queue.id}/items/{first.item_id}/label/",
        {
            "verdict": "bad",
            "category": "wrong-arguments",
            "corrected_name": "clock",
            "corrected_arguments": '{"timezone": "Europe/Paris"}',
        },
        **HTMX,
    )
    body = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in body and body.lstrip().startswith('<div class="annotate" id="item-panel"')
    assert 'data-seq="5"' in body and 'you: <span data-testid="mine-done">1</span>' in body
    label = Annotation.objects.get(author=ana)
    assert label.corrected_call == {"name": "clock", "arguments": {"timezone": "Europe/Paris"}}
    assert label.queue_id == queue.id


def test_a_bad_corrected_call_comes_back_on_the_same_item_with_the_reason(client, clock_queue):
    queue, ana = clock_queue
    client.force_login(ana)
    client.get(f"/queues/{queue.id}/annotate/")
    item_id = QueueAssignment.objects.get(user=ana).item_id
    response = client.post(
        f"/queues/{queue.id}/items/{item_id}/label/",
        {"verdict": "bad", "corrected_name": "clock", "corrected_arguments": '{"zone": 1}'},
        **HTMX,
    )
    body = response.content.decode()
    assert 'data-seq="2"' in body and "breaks the schema of &#x27;clock&#x27;" in body
    assert 'value="{&quot;zone&quot;: 1}"' in body or "{&quot;zone&quot;: 1}" in body
    assert not Annotation.objects.exists()
    plain = client.post(f"/queues/{queue.id}/items/{item_id}/label/", {"verdict": "awful"})
    assert plain.status_code == 400


def test_without_javascript_a_save_redirects_to_the_next_item(client, clock_queue):
    queue, ana = clock_queue
    client.force_login(ana)
    client.get(f"/queues/{queue.id}/annotate/")
    item_id = QueueAssignment.objects.get(user=ana).item_id
    response = client.post(f"/queues/{queue.id}/items/{item_id}/label/", {"verdict": "good"})
    assert response.status_code == 302 and response["Location"] == f"/queues/{queue.id}/annotate/"
    assert 'data-seq="5"' in client.get(response["Location"]).content.decode()


def test_skip_and_back(client, clock_queue):
    queue, ana = clock_queue
    client.force_login(ana)
    client.get(f"/queues/{queue.id}/annotate/")
    first = QueueAssignment.objects.get(user=ana).item_id
    client.post(f"/queues/{queue.id}/items/{first}/label/", {"verdict": "good"}, **HTMX)
    second = QueueAssignment.objects.get(user=ana, status="claimed")
    skipped = client.post(
        f"/queues/{queue.id}/items/{second.item_id}/skip/", **HTMX
    ).content.decode()
    assert "Nothing left for you in this queue." in skipped
    back = client.get(f"/queues/{queue.id}/annotate/?back=", **HTMX).content.decode()
    assert 'data-seq="5"' in back  # the skipped one, the latest of ana's
    # Back from the item at position 2 (step #5): position 1, labelled, with its version.
    back = client.get(f"/queues/{queue.id}/annotate/?back=2", **HTMX).content.decode()
    assert 'data-seq="2"' in back and 'name="version" value="1"' in back
    assert 'value="good" data-key="1" checked' in back
    back = client.get(f"/queues/{queue.id}/annotate/?back=1", **HTMX).content.decode()
    assert "There is no earlier item of yours." in back


def test_viewers_see_queues_but_cannot_label_and_only_admins_export(client, make_user, demo_queue):
    client.force_login(make_user("vic", "viewer"))
    assert client.get("/queues/").status_code == 200
    page = client.get(f"/queues/{demo_queue.id}/").content.decode()
    assert (
        'data-testid="kappa">0.656' in page
        and "Annotate</a>" not in page
        and "Export</button>" not in page
    )
    assert client.get(f"/queues/{demo_queue.id}/annotate/").status_code == 403
    item = demo_queue.items.first()
    assert (
        client.post(
            f"/queues/{demo_queue.id}/items/{item.id}/label/", {"verdict": "good"}
        ).status_code
        == 403
    )
    assert client.post("/exports/", {"format": "sft", "queue": demo_queue.id}).status_code == 403
    client.force_login(make_user("ann"))  # annotator, but not on the demo queue
    assert client.get(f"/queues/{demo_queue.id}/").status_code == 404
    assert client.post("/exports/", {"format": "sft"}).status_code == 403


def test_the_queue_page_shows_progress_per_annotator_and_disagreements(
    client, make_user, demo_queue
):
    client.force_login(make_user("root", "admin"))
    page = client.get(f"/queues/{demo_queue.id}/").content.decode()
    assert 'data-testid="queue-progress">28 / 28</span>' in page
    assert 'data-annotator="demo-ana"' in page and 'data-annotator="demo-ben"' in page
    assert "Disagreements (3 open, 0 adjudicated)" in page
    assert page.count("Adjudicate</a>") == 3
    assert "Export</button>" in page


def test_an_admin_adjudicates_and_the_gold_label_is_kept(client, make_user, demo_queue):
    client.force_login(make_user("root", "admin"))
    page = client.get(f"/queues/{demo_queue.id}/").content.decode()
    import re

    url = re.search(r'href="(/queues/\d+/adjudicate/[^"]+)"', page).group(1)
    form = client.get(url).content.decode()
    assert "demo-ana" in form and "demo-ben" in form
    response = client.post(url, {"verdict": "bad", "category": "tool-failure", "note": "settled"})
    assert response.status_code == 302
    gold = Annotation.objects.get(role="gold")
    assert (gold.verdict, gold.category.slug, gold.author.username) == (
        "bad",
        "tool-failure",
        "root",
    )
    assert (
        "Disagreements (2 open, 1 adjudicated)"
        in client.get(f"/queues/{demo_queue.id}/").content.decode()
    )


def test_creating_a_queue_from_the_form(client, make_user, schema_trace):
    client.force_login(make_user("root", "admin"))
    ana = make_user("ana")
    bad = client.post("/queues/new/", {"name": "x", "since": "last week"})
    assert bad.status_code == 400 and "since must be a date" in bad.content.decode()
    response = client.post(
        "/queues/new/",
        {
            "name": "Clock",
            "tool": "clock",
            "step_kinds": "tool_calls",
            "overlap": "1",
            "assignment": "round_robin",
            "annotators": [ana.pk],
            "sample": "1",
            "seed": "4",
        },
    )
    queue = AnnotationQueue.objects.get()
    assert response["Location"] == f"/queues/{queue.id}/"
    assert queue.filter == {"tool": "clock", "sample": 1, "seed": 4}
    assert list(queue.annotators.all()) == [ana] and queue.items.count() == 2
    client.force_login(ana)
    assert client.get("/queues/new/").status_code == 403


def test_an_export_from_the_ui_is_recorded_and_queued(
    client, make_user, demo_queue, django_capture_on_commit_callbacks
):
    client.force_login(make_user("root", "admin"))
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post("/exports/", {"format": "dpo", "queue": demo_queue.id, "split": ""})
    export = Export.objects.get()
    assert response["Location"] == f"/exports/{export.id}/"
    assert (export.format, export.queue_id, export.status) == ("dpo", demo_queue.id, "queued")
    assert len(callbacks) == 1  # the task is sent once the export row is committed
    page = client.get(f"/exports/{export.id}/").content.decode()
    assert 'hx-trigger="every 1s"' in page and "Queued" in page
    assert client.get(f"/exports/{export.id}/download/").status_code == 404
    bad = client.post("/exports/", {"format": "csv"})
    assert bad.status_code == 302 and Export.objects.count() == 1


def test_admins_edit_the_taxonomy_in_the_admin(client, make_user):
    from traces.annotation_models import ErrorCategory

    client.force_login(make_user("root", "admin"))
    assert "Wrong arguments" in client.get("/admin/traces/errorcategory/").content.decode()
    category = ErrorCategory.objects.get(slug="other")
    response = client.post(
        f"/admin/traces/errorcategory/{category.id}/change/",
        {
            "slug": "other",
            "name": "Something else",
            "description": "",
            "position": 8,
            "active": "on",
        },
    )
    assert response.status_code == 302
    assert ErrorCategory.objects.get(slug="other").name == "Something else"
    for page in ("annotation", "annotationqueue", "export"):
        assert client.get(f"/admin/traces/{page}/").status_code == 200


def test_the_annotator_gives_the_whole_trace_a_verdict_and_score(client, clock_queue, schema_trace):
    queue, ana = clock_queue
    client.force_login(ana)
    client.get(f"/queues/{queue.id}/annotate/")
    item_id = QueueAssignment.objects.get(user=ana).item_id
    url = f"/queues/{queue.id}/items/{item_id}/trace-label/"
    body = client.post(url, {"verdict": "bad", "score": "0.3"}, **HTMX).content.decode()
    assert body.lstrip().startswith('<form class="trace-label-form"') and "saved" in body
    label = Annotation.objects.get(step=None)
    assert (label.trace_id, label.verdict, label.score) == (schema_trace.id, "bad", 0.3)
    too_high = client.post(
        url, {"verdict": "bad", "score": "3", "version": "1"}, **HTMX
    ).content.decode()
    assert "score must be a number from 0 to 1" in too_high
    stale = client.post(url, {"verdict": "good", "score": "1"}, **HTMX).content.decode()
    assert "you sent none" in stale
    assert Annotation.objects.get(step=None).score == 0.3
