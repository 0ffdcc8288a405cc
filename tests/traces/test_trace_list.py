"""Finding traces: filters, full-text search over steps, keyset pages, saved filters,
bulk tag/delete, and GET /api/traces (the same selector)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from traces.models import Step, Trace, TraceTag
from traces.services import step_record, trace_create, trace_finish, trace_start

pytestmark = pytest.mark.django_db


def run(name: str, *, agent: str = "demo", endpoint: str = "local", steps=(), status="succeeded"):
    trace = trace_create(
        name=name, input=f"input of {name}", agent_slug=agent, metadata={"endpoint": endpoint}
    )
    trace_start(trace_id=trace.id)
    for kind, step_name, data in steps:
        step_record(trace_id=trace.id, kind=kind, name=step_name, **data)
    return trace_finish(trace_id=trace.id, status=status)


@pytest.fixture
def traces(db):
    a = run(
        "alpha",
        steps=[
            ("model_call", "m", {"prompt_tokens": 100, "completion_tokens": 20}),
            ("tool_call", "calculator", {"input": {"expression": "17 * 23"}}),
            ("tool_result", "calculator", {"output": {"result": 391}}),
        ],
    )
    b = run(
        "beta",
        agent="other",
        endpoint="openai",
        steps=[
            ("tool_call", "echo", {"input": {"text": "the quick brown fox"}}),
            ("error", "tool_error", {"error": "echo failed: boom"}),
        ],
        status="failed",
    )
    c = run("gamma", steps=[("final", "answer", {"output": {"content": "all good"}})])
    return a, b, c


@pytest.fixture
def viewer(client, make_user):
    user = make_user("vic", "viewer")
    client.force_login(user)
    return user


@pytest.fixture
def admin(client, make_user):
    user = make_user("ada", "admin")
    client.force_login(user)
    return user


def names(client, query: str) -> list[str]:
    response = client.get("/api/traces?" + query)
    assert response.status_code == 200, response.content
    return [t["name"] for t in response.json()["traces"]]


@pytest.mark.parametrize(
    "query, expected",
    [
        ("", ["gamma", "beta", "alpha"]),
        ("agent=other", ["beta"]),
        ("endpoint=local", ["gamma", "alpha"]),
        ("tool=calculator", ["alpha"]),
        ("status=failed", ["beta"]),
        ("error_kind=tool_error", ["beta"]),
        ("min_tokens=50", ["alpha"]),
        ("max_tokens=0", ["gamma", "beta"]),
        ("q=quick+fox", ["beta"]),
        ("q=391", ["alpha"]),
        ("q=boom", ["beta"]),
        ("min_duration=3600", []),
        ("max_duration=3600", ["gamma", "beta", "alpha"]),
    ],
)
def test_the_list_filters_by_each_field(client, viewer, traces, query, expected):
    assert names(client, query) == expected


def test_the_list_filters_by_date_and_tag(client, viewer, traces):
    a, b, c = traces
    Trace.objects.filter(pk=a.pk).update(created_at=timezone.now() - timedelta(days=10))
    since = (timezone.now() - timedelta(days=2)).date().isoformat()
    assert names(client, f"since={since}") == ["gamma", "beta"]
    assert names(client, f"until={since}") == ["alpha"]
    TraceTag.objects.create(trace=b, name="regression")
    assert names(client, "tag=regression") == ["beta"]


def test_the_api_finds_a_trace_by_its_otlp_trace_id(client, viewer, traces):
    Trace.objects.filter(pk=traces[0].pk).update(otel_trace_id="ab" * 16)
    assert names(client, "otel_trace_id=" + "AB" * 16) == ["alpha"]


@pytest.mark.parametrize(
    "query, message",
    [
        ("status=sideways", "status must be one of"),
        ("min_tokens=²", "min_tokens must be a whole number"),
        ("since=yesterday", "since must be a date"),
        ("before=not-a-cursor", "page cursor is not valid"),
        ("limit=0", "limit must be between 1 and 200"),
    ],
)
def test_bad_filters_get_a_clear_400(client, viewer, traces, query, message):
    response = client.get("/api/traces?" + query)
    assert response.status_code == 400
    assert message in response.json()["error"]
    page = client.get("/traces/?" + query.replace("limit=0", "status=x"))
    assert page.status_code == 400


def test_keyset_pages_walk_every_trace_once_in_both_directions(client, viewer):
    now = timezone.now()
    for n in range(7):
        trace = trace_create(name=f"t{n}", input="x")
        # Two traces share each timestamp: the id breaks the tie.
        Trace.objects.filter(pk=trace.pk).update(created_at=now - timedelta(seconds=n // 2))
    seen, cursor, pages = [], "", []
    while True:
        body = client.get(f"/api/traces?limit=3{'&before=' + cursor if cursor else ''}").json()
        pages.append([t["name"] for t in body["traces"]])
        seen += pages[-1]
        if not body["next"]:
            break
        cursor = body["next"]
    assert sorted(seen) == [f"t{n}" for n in range(7)] and len(seen) == 7
    back = client.get(f"/api/traces?limit=3&after={body['prev']}").json()
    assert [t["name"] for t in back["traces"]] == pages[-2]


def test_a_saved_filter_comes_back_as_a_link(client, viewer, traces):
    response = client.post(
        "/traces/saved-filters/", {"name": "failures", "query": "status=failed"}, follow=True
    )
    assert "Filter saved." in response.content.decode()
    page = client.get("/traces/").content.decode()
    assert 'href="?status=failed" data-testid="saved-filter">failures</a>' in page


def test_bulk_tagging_then_deleting_asks_for_confirmation_first(client, admin, traces):
    a, b, c = traces
    ids = [str(a.id), str(b.id)]
    client.post("/traces/bulk/", {"action": "tag", "tag": "review", "ids": ids})
    assert set(TraceTag.objects.values_list("trace__name", flat=True)) == {"alpha", "beta"}

    confirm = client.post("/traces/bulk/", {"action": "delete", "ids": ids})
    assert confirm.status_code == 200
    assert "Delete 2 traces?" in confirm.content.decode()
    assert Trace.objects.count() == 3  # nothing gone yet

    client.post("/traces/bulk/", {"action": "delete", "ids": ids, "confirm": "yes"})
    assert list(Trace.objects.values_list("name", flat=True)) == ["gamma"]
    assert not Step.objects.filter(trace_id__in=ids).exists()


def test_a_viewer_cannot_tag_or_delete(client, viewer, traces):
    response = client.post(
        "/traces/bulk/", {"action": "delete", "ids": [str(traces[0].id)], "confirm": "yes"}
    )
    assert response.status_code == 403
    assert Trace.objects.count() == 3


def test_a_running_trace_is_kept_by_a_bulk_delete(client, admin):
    trace = trace_create(name="busy", input="x")
    trace_start(trace_id=trace.id)
    response = client.post(
        "/traces/bulk/", {"action": "delete", "ids": [str(trace.id)], "confirm": "yes"}, follow=True
    )
    assert "1 still running or queued were kept" in response.content.decode()
    assert Trace.objects.filter(pk=trace.pk).exists()


def test_a_trace_sums_its_calls_errors_and_cost(client, viewer):
    trace = trace_create(
        name="priced",
        input="x",
        metadata={"price": {"prompt_per_1k": 2.0, "completion_per_1k": 4.0}},
    )
    trace_start(trace_id=trace.id)
    step_record(trace_id=trace.id, kind="model_call", prompt_tokens=1000, completion_tokens=500)
    step_record(trace_id=trace.id, kind="tool_call", name="echo")
    step_record(trace_id=trace.id, kind="error", name="tool_error", error="x")
    trace.refresh_from_db()
    assert (trace.model_calls, trace.tool_calls, trace.error_count, trace.cost) == (1, 1, 1, 4.0)
    page = client.get(f"/traces/{trace.id}/").content.decode()
    assert '<dd id="summary-errors" data-testid="error-count">1</dd>' in page
    assert "$4.0000" in page


def test_the_list_filters_by_annotation_state(client, viewer, traces, make_user):
    from traces.annotation_services import annotation_save
    from traces.taxonomy import error_categories_seed

    error_categories_seed()
    alpha, beta, gamma = traces
    ana = make_user("ana")
    call = Step.objects.get(trace=alpha, kind="tool_call")
    call.metadata = {"schema": {"type": "object", "properties": {"expression": {"type": "string"}}}}
    call.save(update_fields=["metadata"])
    annotation_save(
        user=ana,
        trace_id=alpha.id,
        step_seq=call.seq,
        verdict="bad",
        corrected_call={"name": "calculator", "arguments": {"expression": "17*23"}},
    )
    annotation_save(user=ana, trace_id=alpha.id, step_seq=1, verdict="good")
    annotation_save(user=ana, trace_id=gamma.id, step_seq=None, verdict="good", score=1.0)
    assert names(client, "annotation=any") == ["gamma", "alpha"]
    assert names(client, "annotation=none") == ["beta"]
    assert names(client, "annotation=good") == ["gamma"]  # alpha has a bad step too
    assert names(client, "annotation=bad") == ["alpha"]
    assert names(client, "annotation=has_correction") == ["alpha"]
    # The page offers it, keeps the choice, and lists the same traces.
    page = client.get("/traces/?annotation=none").content.decode()
    assert '<option value="none" selected>' in page
    assert "beta" in page and "alpha" not in page and "gamma" not in page
    bad = client.get("/traces/?annotation=maybe")
    assert bad.status_code == 400 and "annotation must be one of" in bad.content.decode()
