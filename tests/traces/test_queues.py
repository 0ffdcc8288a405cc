"""Queues: built from a saved filter with seeded sampling, assignment, claiming."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import close_old_connections
from django.utils import timezone

from traces.annotation_models import AnnotationQueue, QueueAssignment, QueueItem
from traces.annotation_services import (
    ClaimExpired,
    QueueError,
    annotation_save,
    queue_create,
    queue_create_from_failures,
    queue_next,
    queue_previous,
    queue_skip,
    trace_ids_matching,
)
from traces.demo import RUNS, demo_run_record
from traces.models import Trace
from traces.services import trace_create, trace_finish


@pytest.fixture
def runs(db):
    """The five demo runs, finished, plus a running trace a filter never takes."""
    traces = [demo_run_record(input=r["input"], turns=r["turns"]) for r in RUNS]
    trace_create(name="still running", agent_slug="demo")
    return traces


@pytest.mark.django_db
def test_a_filter_selects_finished_traces_by_tool_error_and_status(runs):
    assert trace_ids_matching({"tool": "clock"}) == [runs[1].id]
    assert trace_ids_matching({"error": "any"}) == [runs[1].id]
    assert trace_ids_matching({"error": "Additional properties"}) == [runs[1].id]
    assert len(trace_ids_matching({"agent": "demo"})) == 5
    failed = trace_create(name="x", agent_slug="other")
    trace_finish(trace_id=failed.id, status=Trace.Status.FAILED, error="boom")
    assert trace_ids_matching({"status": "failed"}) == [failed.id]


@pytest.mark.django_db
def test_a_sample_with_a_seed_is_the_same_every_time_and_differs_by_seed(runs):
    first = trace_ids_matching({"agent": "demo", "sample": 3, "seed": 7})
    assert len(first) == 3
    assert trace_ids_matching({"agent": "demo", "sample": 3, "seed": 7}) == first
    seeds = {tuple(trace_ids_matching({"agent": "demo", "sample": 3, "seed": s})) for s in range(6)}
    assert len(seeds) > 1


@pytest.mark.django_db
def test_queue_settings_choose_the_steps(runs):
    tools = queue_create(name="t", filter={"agent": "demo"}, step_kinds="tool_calls")
    models = queue_create(name="m", filter={"agent": "demo"}, step_kinds="model_calls")
    every = queue_create(name="a", filter={"agent": "demo"})
    kinds = lambda q: {i.step.kind for i in q.items.select_related("step")}  # noqa: E731
    assert kinds(tools) == {"tool_call"} and tools.items.count() == 6
    assert kinds(models) == {"model_call"} and models.items.count() == 11
    assert every.items.count() == sum(t.step_count for t in Trace.objects.filter(agent_slug="demo"))


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"filter": {"colour": "red"}}, "unknown filter 'colour'"),
        ({"filter": {"since": "yesterday"}}, "since must be a date"),
        ({"filter": {"sample": 0}}, "sample must be at least 1"),
        ({"overlap": 0}, "overlap (annotators per item) must be from 1 to 10"),
        ({"step_kinds": "some"}, "unknown step kinds 'some'"),
        (
            {"assignment": "round_robin", "overlap": 2},
            "round-robin with overlap 2 needs at least 2",
        ),
    ],
)
def test_bad_queue_settings_are_refused_and_nothing_is_made(runs, options, message):
    with pytest.raises(QueueError) as caught:
        queue_create(name="q", **options)
    assert message in str(caught.value)
    assert not AnnotationQueue.objects.exists()


@pytest.mark.django_db
def test_round_robin_deals_items_in_turn(runs, make_user):
    ana, ben, cy = make_user("ana"), make_user("ben"), make_user("cy")
    queue = queue_create(
        name="rr",
        filter={"agent": "demo"},
        step_kinds="tool_calls",
        assignment="round_robin",
        overlap=2,
        annotators=[ana, ben, cy],
    )
    held = {
        u.username: list(
            QueueAssignment.objects.filter(user=u)
            .order_by("position")
            .values_list("position", flat=True)
        )
        for u in (ana, ben, cy)
    }
    assert held == {"ana": [1, 2, 4, 5], "ben": [1, 3, 4, 6], "cy": [2, 3, 5, 6]}
    assert queue_next(queue=queue, user=ana).position == 1
    outsider = make_user("dee")
    assert queue_next(queue=queue, user=outsider) is None


@pytest.mark.django_db
def test_pull_next_with_overlap_two_gives_each_item_to_two_people_once(runs, make_user):
    ana, ben, cy = make_user("ana"), make_user("ben"), make_user("cy")
    queue = queue_create(name="pull", filter={"tool": "clock"}, step_kinds="tool_calls", overlap=2)
    a1, b1 = queue_next(queue=queue, user=ana), queue_next(queue=queue, user=ben)
    assert a1.item_id == b1.item_id  # both take the first item
    c1 = queue_next(queue=queue, user=cy)
    assert c1.item_id != a1.item_id  # it is full: cy gets the second
    step = a1.item.step
    annotation_save(user=ana, trace_id=step.trace_id, step_seq=step.seq, verdict="bad")
    a2 = queue_next(queue=queue, user=ana)
    assert a2.item_id == c1.item_id
    queue_skip(queue=queue, user=ana, item_id=a2.item_id)
    assert queue_next(queue=queue, user=ana) is None  # skipped items do not come back
    assert queue_previous(queue=queue, user=ana, before=a2.position).item_id == a1.item_id
    # The slot ana gave up is free again: ben takes it.
    annotation_save(user=ben, trace_id=step.trace_id, step_seq=step.seq, verdict="bad")
    assert queue_next(queue=queue, user=ben).item_id == c1.item_id


@pytest.mark.django_db
def test_the_experiment_hook_makes_a_queue_of_given_traces(runs):
    queue = queue_create_from_failures(
        name="exp 1 failures", trace_ids=[runs[4].id], step_kinds="model_calls"
    )
    assert queue.source == "experiment"
    assert {i.trace_id for i in queue.items.all()} == {runs[4].id}


def _all_at_once(users, work) -> None:
    """Run ``work(user)`` for every user in its own thread (own connection), started
    together; fail with any exception a thread raised."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(users))

    def run(user) -> None:
        try:
            barrier.wait()
            work(user)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            close_old_connections()

    threads = [threading.Thread(target=run, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors


@pytest.mark.django_db(transaction=True)
def test_concurrent_annotators_never_get_the_same_single_overlap_item(runs, make_user):
    users = [make_user(f"u{i}") for i in range(6)]
    queue = queue_create(name="race", filter={"agent": "demo"}, step_kinds="model_calls")
    taken: dict[str, list[int]] = {}

    def work(user) -> None:
        mine = []
        while (a := queue_next(queue=queue, user=user)) is not None:
            mine.append(a.item_id)
            QueueAssignment.objects.filter(pk=a.pk).update(status="done")
        taken[user.username] = mine

    _all_at_once(users, work)
    everything = [i for items in taken.values() for i in items]
    assert len(everything) == len(set(everything)) == QueueItem.objects.filter(queue=queue).count()
    assert all(QueueItem.objects.filter(queue=queue).values_list("claims", flat=True))
    assert set(QueueItem.objects.filter(queue=queue).values_list("claims", flat=True)) == {1}


def _age(assignment, minutes: float) -> None:
    QueueAssignment.objects.filter(pk=assignment.pk).update(
        claimed_at=timezone.now() - timedelta(minutes=minutes)
    )


@pytest.mark.django_db
def test_an_expired_claim_is_taken_over_by_the_next_annotator(runs, make_user, settings):
    settings.TOOLTRAIL_ANNOTATION_CLAIM_MINUTES = 30
    ana, ben, cy, dee = (make_user(n) for n in ("ana", "ben", "cy", "dee"))
    queue = queue_create(name="walk away", filter={"agent": "demo"}, step_kinds="tool_calls")
    a1 = queue_next(queue=queue, user=ana)
    b1 = queue_next(queue=queue, user=ben)
    _age(b1, 29)  # ben's claim is still young: nobody takes it
    c1 = queue_next(queue=queue, user=cy)
    assert c1.item_id not in (a1.item_id, b1.item_id)
    _age(a1, 31)  # ana walked away; dee takes her item before any fresh one
    d1 = queue_next(queue=queue, user=dee)
    assert d1.item_id == a1.item_id and d1.status == "claimed"
    assert QueueAssignment.objects.get(pk=a1.pk).status == "expired"
    item = QueueItem.objects.get(pk=a1.item_id)
    assert (item.claims, item.is_full) == (1, True)  # one holder out, one in
    # ana comes back: her label is refused, naming who has the item now.
    step = a1.item.step
    with pytest.raises(ClaimExpired, match="dee has taken it over"):
        annotation_save(
            user=ana, trace_id=step.trace_id, step_seq=step.seq, verdict="bad", queue_id=queue.id
        )
    assert not step.annotations.exists()
    with pytest.raises(QueueError, match="dee has taken it over"):
        queue_skip(queue=queue, user=ana, item_id=a1.item_id)
    # She is not handed the item back; she gets fresh work.
    assert queue_next(queue=queue, user=ana).item_id not in (a1.item_id, b1.item_id, c1.item_id)
    annotation_save(
        user=dee, trace_id=step.trace_id, step_seq=step.seq, verdict="good", queue_id=queue.id
    )
    assert QueueItem.objects.get(pk=a1.item_id).done_count == 1


@pytest.mark.django_db
def test_an_expired_claim_nobody_took_is_still_its_holders(runs, make_user, settings):
    settings.TOOLTRAIL_ANNOTATION_CLAIM_MINUTES = 30
    ana = make_user("ana")
    queue = queue_create(name="late", filter={"tool": "clock"}, step_kinds="tool_calls")
    a1 = queue_next(queue=queue, user=ana)
    _age(a1, 120)
    assert queue_next(queue=queue, user=ana).pk == a1.pk
    step = a1.item.step
    annotation_save(
        user=ana, trace_id=step.trace_id, step_seq=step.seq, verdict="good", queue_id=queue.id
    )
    assert QueueAssignment.objects.get(pk=a1.pk).status == "done"


@pytest.mark.django_db
def test_claims_never_expire_when_the_setting_is_zero(runs, make_user, settings):
    settings.TOOLTRAIL_ANNOTATION_CLAIM_MINUTES = 0
    ana, ben = make_user("ana"), make_user("ben")
    queue = queue_create(name="forever", filter={"tool": "clock"}, step_kinds="tool_calls")
    a1 = queue_next(queue=queue, user=ana)
    _age(a1, 60 * 24 * 365)
    assert queue_next(queue=queue, user=ben).item_id != a1.item_id


@pytest.mark.django_db(transaction=True)
def test_concurrent_annotators_take_over_an_expired_claim_once(runs, make_user, settings):
    settings.TOOLTRAIL_ANNOTATION_CLAIM_MINUTES = 30
    users = [make_user(f"u{i}") for i in range(5)]
    gone = make_user("gone")
    queue = queue_create(name="race", filter={"agent": "demo"}, step_kinds="model_calls")
    left = queue_next(queue=queue, user=gone)
    _age(left, 45)
    got: dict[str, int] = {}

    def work(user) -> None:
        got[user.username] = queue_next(queue=queue, user=user).item_id

    _all_at_once(users, work)
    assert len(set(got.values())) == len(users)  # nobody shares an item
    assert list(got.values()).count(left.item_id) == 1  # exactly one took it over
    held = QueueAssignment.objects.filter(item_id=left.item_id).values_list("status", flat=True)
    assert sorted(held) == ["claimed", "expired"]
    assert set(QueueItem.objects.filter(queue=queue).values_list("claims", flat=True)) <= {0, 1}
