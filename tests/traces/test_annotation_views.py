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


# One key press (save the label, claim the next item, render it) costs this many
# queries, whatever the queue's size: session and user (2), permissions (2), the queue
# and the held item (2); in one transaction: the label (lock, insert in a savepoint, its
# revision: 5), finishing the assignment (3), the next claim (own items, one candidate
# query, claim, assignment: 4); then the page: progress (1 query for all figures),
# categories, earlier steps, the user's labels (4). Under the test's transaction the
# service's atomic block adds a savepoint and its release (2). bench/annotate.py times it.
KEY_PRESS_QUERIES = 24


def test_one_key_press_takes_a_fixed_number_of_queries(client, clock_queue, make_user):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from traces.annotation_services import queue_create

    queue, ana = clock_queue
    # A bigger queue over the same steps, with other annotators' work in it: the count
    # must not grow with items, labels or people.
    big = queue_create(name="all steps", filter={"agent": "demo"}, annotators=[ana])
    for name in ("ben", "cy"):
        other = make_user(name)
        client.force_login(other)
        client.get(f"/queues/{big.id}/annotate/")
    client.force_login(ana)
    for q in (queue, big):
        client.get(f"/queues/{q.id}/annotate/")
        held = QueueAssignment.objects.get(queue=q, user=ana, status="claimed")
        with CaptureQueriesContext(connection) as ctx:
            response = client.post(
                f"/queues/{q.id}/items/{held.item_id}/label/", {"verdict": "good"}, **HTMX
            )
        assert response.status_code == 200 and 'data-item="' in response.content.decode()
        assert QueueAssignment.objects.get(pk=held.pk).status == "done"
        sql = "\n".join(x["sql"][:120] for x in ctx.captured_queries)
        assert len(ctx.captured_queries) == KEY_PRESS_QUERIES, sql


def test_an_annotator_back_after_their_claim_expired_is_told_who_took_it(
    client, make_user, schema_trace, settings
):
    from datetime import timedelta

    from django.utils import timezone

    settings.TOOLTRAIL_ANNOTATION_CLAIM_MINUTES = 30
    ana, ben = make_user("ana"), make_user("ben")
    queue = queue_create(name="Demo steps", filter={"agent": "demo"})
    client.force_login(ana)
    client.get(f"/queues/{queue.id}/annotate/")
    held = QueueAssignment.objects.get(user=ana)
    QueueAssignment.objects.filter(pk=held.pk).update(
        claimed_at=timezone.now() - timedelta(minutes=40)
    )
    client.force_login(ben)
    page = client.get(f"/queues/{queue.id}/annotate/").content.decode()
    assert f'data-item="{held.item_id}"' in page  # ben took ana's abandoned item
    client.force_login(ana)
    response = client.post(
        f"/queues/{queue.id}/items/{held.item_id}/label/", {"verdict": "bad"}, **HTMX
    )
    body = response.content.decode()
    assert response.status_code == 200
    assert "Your claim on this item expired (claims last 30 minutes) and ben has taken it" in body
    assert f'data-item="{held.item_id}"' not in body and 'data-item="' in body  # her next one
    assert not Annotation.objects.filter(author=ana).exists()
    # Without JavaScript: the same message after the redirect.
    client.get(f"/queues/{queue.id}/annotate/")
    response = client.post(f"/queues/{queue.id}/items/{held.item_id}/label/", {"verdict": "bad"})
    assert response.status_code == 302
    assert "ben has taken it over" in client.get(response.url).content.decode()
