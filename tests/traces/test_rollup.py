"""The dashboard's hourly roll-up gives the raw aggregate queries' numbers (percentiles
within the 2.5 % of their buckets), whatever part of a period is folded, and keeps
giving them when folded runs are deleted or imported."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from django.utils import timezone

from traces import stats
from traces.models import Step, Trace
from traces.rollup import RATIO, dashboard_figures, hour_floor
from traces.rollup_models import Grain, RollupHour, RunsHourly
from traces.rollup_services import rollup_fold
from traces.services import trace_import, traces_delete
from traces.transfer import trace_export_json

pytestmark = pytest.mark.django_db

AGENTS = ["alpha", "beta", "gamma"]
TOOLS = ["calculator", "clock", "search", "sleep"]


def _at(obj, **times) -> None:
    type(obj).objects.filter(pk=obj.pk).update(**times)


def _make_runs(now, *, count: int = 150, seed: int = 7) -> None:
    """Runs spread over the last 3 days: every status, endpoints recorded or not, tool
    calls that fail (their error step sometimes an hour later), tool results with and
    without an end, durations from 0.4 ms to 100 s."""
    rng = random.Random(seed)
    statuses = ["succeeded"] * 6 + ["failed"] * 2 + ["cancelled"]
    for i in range(count):
        # Every tenth run in the last half hour (the hour not folded yet).
        ago = rng.uniform(30, 1800) if i % 10 == 0 else rng.uniform(1800, 3 * 86400)
        created = now - timedelta(seconds=ago)
        status = statuses[i % len(statuses)]
        metadata = {"endpoint": rng.choice(["gpt", "local"])} if i % 4 else {}
        ms = rng.choice([0.4, rng.uniform(1, 100), rng.uniform(100, 100_000)])
        trace = Trace.objects.create(
            name="run",
            agent_slug=rng.choice(AGENTS),
            status=status,
            metadata=metadata,
            prompt_tokens=rng.randint(0, 900),
            completion_tokens=rng.randint(0, 300),
        )
        _at(
            trace,
            created_at=created,
            started_at=created,
            ended_at=None if i % 23 == 0 else created + timedelta(milliseconds=ms),
        )
        for turn in range(rng.randint(0, 3)):
            tool = rng.choice(TOOLS)
            # Spread over the run's first half, the error up to an eighth later.
            room = now - created
            at = created + room * turn / 8
            call = Step.objects.create(trace=trace, seq=3 * turn + 1, kind="tool_call", name=tool)
            _at(call, created_at=at)
            failed = rng.random() < 0.3
            later = at + rng.choice([timedelta(0), timedelta(0), room / 8])
            tool_ms = rng.uniform(1, 5000)
            child = Step.objects.create(
                trace=trace,
                seq=3 * turn + 2,
                parent=call,
                kind="error" if failed else "tool_result",
                name="tool_error" if failed else tool,
                started_at=later,
                ended_at=None if rng.random() < 0.1 else later + timedelta(milliseconds=tool_ms),
            )
            _at(child, created_at=later)


def _running_run(now) -> Trace:
    trace = Trace.objects.create(name="slow", agent_slug="alpha", status="running")
    created = now - timedelta(hours=30)
    _at(trace, created_at=created, started_at=created)
    step = Step.objects.create(trace=trace, seq=1, kind="tool_call", name="sleep")
    _at(step, created_at=created + timedelta(hours=2))
    return trace


def _assert_as_raw(since, until) -> None:
    by_hour = dashboard_figures(since=since, until=until, bucket="hour", limit=100)
    assert by_hour.runs_over_time(bucket="hour") == stats.runs_over_time(
        since=since, until=until, bucket="hour"
    )
    # Read by the day (folded days as one row each), the rest must agree all the same.
    got = dashboard_figures(since=since, until=until, limit=100)
    assert got.runs_over_time(bucket="day") == stats.runs_over_time(
        since=since, until=until, bucket="day"
    )
    assert got.outcomes == by_hour.outcomes == stats.trace_outcomes(since=since, until=until)
    assert got.percentiles == by_hour.percentiles

    def by_key(rows):
        return sorted(rows, key=lambda r: (r["agent_slug"], r["endpoint"] or ""))

    assert by_key(got.usage) == by_key(stats.usage_by_agent_and_endpoint(since=since, until=until))
    exact = stats.duration_percentiles(since=since, until=until)
    for q, value in exact.items():
        if value is None:
            assert got.percentiles[q] is None
        elif value < 1:
            assert got.percentiles[q] == 0
        else:
            assert value / RATIO**0.5 <= got.percentiles[q] <= value * RATIO**0.5
    raw_slow = {r["name"]: r for r in stats.slowest_tools(since=since, until=until, limit=100)}
    assert {r["name"] for r in got.slowest} == set(raw_slow)
    for row in got.slowest:
        raw = raw_slow[row["name"]]
        assert row["calls"] == raw["calls"]
        assert row["mean_ms"] == pytest.approx(raw["mean_ms"], rel=1e-9)
        assert row["max_ms"] == pytest.approx(raw["max_ms"], rel=1e-9)
    assert got.failing == stats.failing_tools(since=since, until=until, limit=100)


def test_folded_and_live_hours_give_the_raw_queries_numbers():
    now = timezone.now()
    _make_runs(now)
    running = _running_run(now)
    periods = [
        (now - timedelta(hours=24), now),
        (now - timedelta(days=3, minutes=17), now),
        (now - timedelta(days=2, hours=5, seconds=3), now),
    ]
    for since, until in periods:  # nothing folded yet: all live
        _assert_as_raw(since, until)
    folded = rollup_fold(now=now)
    assert folded > 60 and RunsHourly.objects.exists()
    assert RollupHour.objects.filter(grain=Grain.DAY).exists()
    # The hours of the run still going stay live, as does the hour not ended yet, and
    # the day of those hours is not folded whole.
    held = set(RollupHour.objects.filter(grain=Grain.HOUR).values_list("hour", flat=True))
    assert not RollupHour.objects.filter(
        grain=Grain.DAY, hour=hour_floor(running.created_at).replace(hour=0)
    ).exists()
    assert hour_floor(running.created_at) not in held
    assert hour_floor(running.created_at + timedelta(hours=2)) not in held
    assert hour_floor(now) not in held
    for since, until in periods:
        _assert_as_raw(since, until)
    assert rollup_fold(now=now) == 0  # folding again finds nothing new


def test_the_dashboard_reads_folded_hours_from_the_roll_up():
    now = timezone.now()
    _make_runs(now, count=40)
    rollup_fold(now=now)
    since = now - timedelta(days=3, hours=1)
    before = dashboard_figures(since=since, until=now).outcomes
    # Behind the services' back (no invalidation): the folded figure stays as it was.
    old = Trace.objects.filter(created_at__lt=now - timedelta(hours=3), status="succeeded")
    Trace.objects.filter(pk=old.first().pk).update(status="failed")
    after = dashboard_figures(since=since, until=now).outcomes
    assert (after.succeeded, after.failed) == (before.succeeded, before.failed)
    assert stats.trace_outcomes(since=since, until=now).failed == before.failed + 1


def test_deleting_and_importing_folded_runs_keeps_the_numbers_right():
    now = timezone.now()
    _make_runs(now, count=60, seed=11)
    rollup_fold(now=now)
    since = now - timedelta(days=3, hours=1)
    victim = Trace.objects.filter(created_at__lt=now - timedelta(hours=5)).first()
    hour = hour_floor(victim.created_at)
    assert RollupHour.objects.filter(hour=hour).exists()
    exported = trace_export_json(trace=victim)
    assert traces_delete(trace_ids=[victim.pk]) == 1
    assert not RollupHour.objects.filter(hour=hour).exists()
    assert not RollupHour.objects.filter(grain=Grain.DAY, hour=hour.replace(hour=0)).exists()
    _assert_as_raw(since, now)
    rollup_fold(now=now)
    assert RollupHour.objects.filter(hour=hour).exists()
    trace_import(data=exported)
    assert not RollupHour.objects.filter(hour=hour).exists()
    _assert_as_raw(since, now)
    rollup_fold(now=now)
    _assert_as_raw(since, now)


def test_the_backfill_command_folds_and_rebuilds(capsys):
    from django.core.management import call_command

    now = timezone.now()
    _make_runs(now, count=20, seed=3)
    call_command("dashboard_rollup")
    first = capsys.readouterr().out
    assert first.startswith("folded ") and RunsHourly.objects.exists()
    call_command("dashboard_rollup")
    assert capsys.readouterr().out.startswith("folded 0 hours")
    before = RollupHour.objects.count()
    call_command("dashboard_rollup", "--rebuild")
    assert RollupHour.objects.count() == before
    _assert_as_raw(now - timedelta(days=3, hours=2), timezone.now())


def test_late_spans_that_reopen_an_ingested_run_take_its_hours_out():
    from traces.ingest.mapping import StepRecord
    from traces.services import spans_ingest, trace_finish

    now = timezone.now()
    _make_runs(now, count=20, seed=5)
    otel_id = "cd" * 16

    def span(span_id: str, kind: str, tokens: int) -> StepRecord:
        return StepRecord(
            otel_trace_id=otel_id,
            span_id=span_id,
            parent_span_id="",
            kind=kind,
            name="llm",
            started_at=now,
            ended_at=now,
            prompt_tokens=tokens,
            service_name="late-agent",
        )

    spans_ingest(records=[span("a1", "model_call", 10)])
    trace = Trace.objects.get(otel_trace_id=otel_id)
    trace_finish(trace_id=trace.id, status="succeeded")
    # Make it an old run whose hour is folded.
    old = now - timedelta(hours=7)
    Trace.objects.filter(pk=trace.pk).update(created_at=old)
    Step.objects.filter(trace=trace).update(created_at=old)
    rollup_fold(now=now)
    assert RollupHour.objects.filter(hour=hour_floor(old)).exists()
    spans_ingest(records=[span("a2", "model_call", 32)])
    assert Trace.objects.get(pk=trace.pk).status == "running"
    assert not RollupHour.objects.filter(hour=hour_floor(old)).exists()
    since = now - timedelta(days=3, hours=1)
    _assert_as_raw(since, timezone.now())
    assert dashboard_figures(since=since, until=timezone.now()).outcomes.running == 1
