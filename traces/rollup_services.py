"""Writes of the dashboard's hourly roll-up (``rollup_models``): fold ended hours in, and
take hours out again when the runs in them change.

``rollup_fold`` runs every minute from the upkeep task (Celery beat) and from
``manage.py dashboard_rollup`` (a backfill). It folds every hour that ended more than
``GRACE`` ago, holds no run still going (queued or running, by its trace or by any of its
steps) and is not folded yet; each stretch of such hours is counted in one pass by
``rollup.hour_rows`` — the same code the dashboard uses live — and stored with its
``RollupHour`` rows in one transaction. A UTC day whose 24 hours are folded is then
folded once more, from those hour rows, into one row per key (``grain`` d), which is what
a period of days reads.

A folded hour must not change under the roll-up. Steps are only appended to runs that
are going (so their hours are not folded), and the services that change finished runs
call ``rollup_invalidate`` in their own transaction (it drops their hours and the days
holding them): deleting traces (by hand, by
retention, in the admin), importing one (its times are from the past), late spans that
re-open an ingested trace. Both sides take one lock (PostgreSQL: an advisory lock;
SQLite: every write transaction is ``BEGIN IMMEDIATE`` already), so a fold never stores
figures read before an invalidation that committed after it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import Count, Max, Min, Sum
from django.utils import timezone

from .models import Step, Trace
from .rollup import HOUR, _hour, folded_hours, hour_floor, hour_rows, hours_between
from .rollup_models import Grain, RollupHour, RunDurationsHourly, RunsHourly, ToolsHourly
from .stats import BucketStart

logger = logging.getLogger(__name__)

# An hour is folded this long after it ended: a row stamped in its last second may
# commit a moment later.
GRACE = timedelta(minutes=2)
# Hours folded per transaction: a backfill of months is many short transactions (on
# SQLite each holds the write lock while it counts: about 0.5 s a day at 3,300 runs a day).
CHUNK_HOURS = 24
_LOCK_KEY = 0x7700_11  # any constant, the same for every process

_DATA_MODELS = (RunsHourly, RunDurationsHourly, ToolsHourly)


def _rollup_lock() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])


def _hours_of_traces(trace_ids: Iterable) -> set[datetime]:
    """The hours holding the traces or any of their steps."""
    ids = list(trace_ids)
    hours: set[datetime] = set()
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        for model, filters in ((Trace, {"pk__in": chunk}), (Step, {"trace_id__in": chunk})):
            hours.update(
                _hour(h)
                for h in model.objects.filter(**filters)
                .annotate(h=BucketStart("created_at", "hour"))
                .values_list("h", flat=True)
                .distinct()
                .order_by()
            )
    return hours


def _hours_running() -> set[datetime]:
    """Hours holding a run not finished yet (its trace or one of its steps)."""
    running = Trace.objects.filter(status__in=[Trace.Status.QUEUED, Trace.Status.RUNNING])
    return _hours_of_traces(running.values_list("id", flat=True))


def _hours_drop(hours: Iterable[datetime]) -> None:
    """Drop these hours and the days holding them from the roll-up."""
    hours = list(hours)
    days = list({h.replace(hour=0) for h in hours})
    for grain, moments in ((Grain.HOUR, hours), (Grain.DAY, days)):
        for start in range(0, len(moments), 500):
            chunk = moments[start : start + 500]
            for model in (*_DATA_MODELS, RollupHour):
                model.objects.filter(grain=grain, hour__in=chunk).delete()


def rollup_invalidate(*, trace_ids: Iterable[uuid.UUID | str]) -> int:
    """Take the hours of these traces (and of their steps) out of the roll-up, before
    they change or go: the dashboard counts them live until the next fold. Call it in
    the transaction that changes them, while their rows still exist. Returns how many
    folded hours were taken out."""
    with transaction.atomic():
        _rollup_lock()
        hours = _hours_of_traces(trace_ids)
        folded = list(
            RollupHour.objects.filter(grain=Grain.HOUR, hour__in=hours).values_list(
                "hour", flat=True
            )
        )
        _hours_drop(folded)
    return len(folded)


def _stretches(hours: list[datetime]) -> list[tuple[datetime, datetime]]:
    """Sorted hours as half-open ranges of consecutive hours, at most CHUNK_HOURS each."""
    out: list[tuple[datetime, datetime]] = []
    for hour in sorted(hours):
        if out and out[-1][1] == hour and out[-1][1] - out[-1][0] < CHUNK_HOURS * HOUR:
            out[-1] = (out[-1][0], hour + HOUR)
        else:
            out.append((hour, hour + HOUR))
    return out


def _fold_stretch(start: datetime, end: datetime, now: datetime) -> int:
    with transaction.atomic():
        _rollup_lock()
        skip = _hours_running() | folded_hours(start, end)
        hours = [hour for hour in hours_between(start, end) if hour not in skip]
        if not hours:
            return 0
        # Leftovers of an interrupted fold, if any: data rows live only with their hour.
        _hours_drop(hours)
        wanted = set(hours)
        rows = hour_rows(_stretches(hours))
        RunsHourly.objects.bulk_create(
            [
                RunsHourly(hour=h, agent_slug=agent, endpoint=endpoint, **figures)
                for (h, agent, endpoint), figures in rows.runs.items()
                if h in wanted
            ],
            batch_size=1000,
        )
        RunDurationsHourly.objects.bulk_create(
            [
                RunDurationsHourly(hour=h, bucket=bucket, runs=runs)
                for (h, bucket), runs in rows.durations.items()
                if h in wanted
            ],
            batch_size=1000,
        )
        ToolsHourly.objects.bulk_create(
            [
                ToolsHourly(hour=h, name=name, **figures)
                for (h, name), figures in rows.tools.items()
                if h in wanted
            ],
            batch_size=1000,
        )
        RollupHour.objects.bulk_create(
            [RollupHour(hour=h, grain=Grain.HOUR, folded_at=now) for h in hours], batch_size=1000
        )
    return len(hours)


def rollup_fold(*, now: datetime | None = None) -> int:
    """Fold every hour that can be folded and is not yet (see the module's docstring),
    from the first trace's hour on. Returns how many hours were folded."""
    now = now or timezone.now()
    first = Trace.objects.aggregate(first=Min("created_at"))["first"]
    if first is None:
        return 0
    horizon = hour_floor(now - GRACE)
    # From the first run's midnight, so that its day can be folded whole too.
    start = hour_floor(first).replace(hour=0)
    if start >= horizon:
        return 0
    folded = folded_hours(start, horizon)
    todo = [hour for hour in hours_between(start, horizon) if hour not in folded]
    count = 0
    for a, b in _stretches(todo):
        count += _fold_stretch(a, b, now)
    days = _fold_days(now)
    if count or days:
        logger.info("dashboard roll-up: folded %d hours, %d days", count, days)
    return count


def _fold_days(now: datetime) -> int:
    """Fold every UTC day whose 24 hours are folded (and the day itself is not yet) from
    its hour rows: sums, and the largest of the maxima."""
    complete = (
        RollupHour.objects.filter(grain=Grain.HOUR)
        .annotate(day=BucketStart("hour", "day"))
        .values("day")
        .annotate(n=Count("id"))
        .filter(n=24)
        .values_list("day", flat=True)
        .order_by()
    )
    done = set(RollupHour.objects.filter(grain=Grain.DAY).values_list("hour", flat=True))
    days = sorted(d for d in map(_hour, complete) if d not in done)
    for day in days:
        with transaction.atomic():
            _rollup_lock()
            hours = {"grain": Grain.HOUR, "hour__gte": day, "hour__lt": day + timedelta(days=1)}
            # Checked again under the lock: an invalidation may have come in between.
            if (
                RollupHour.objects.filter(**hours).count() != 24
                or RollupHour.objects.filter(grain=Grain.DAY, hour=day).exists()
            ):
                continue
            at = {"grain": Grain.DAY, "hour": day}
            runs = ("runs", "succeeded", "failed", "cancelled", "prompt_tokens")
            runs += ("completion_tokens", "timed_runs", "duration_ms_sum")
            RunsHourly.objects.bulk_create(
                RunsHourly(**at, **row)
                for row in RunsHourly.objects.filter(**hours)
                .values("agent_slug", "endpoint")
                .annotate(**{f: Sum(f) for f in runs})
                .order_by()
            )
            RunDurationsHourly.objects.bulk_create(
                RunDurationsHourly(**at, **row)
                for row in RunDurationsHourly.objects.filter(**hours)
                .values("bucket")
                .annotate(runs=Sum("runs"))
                .order_by()
            )
            tools = ("calls", "failures", "results", "timed_results", "result_ms_sum")
            ToolsHourly.objects.bulk_create(
                ToolsHourly(**at, **row)
                for row in ToolsHourly.objects.filter(**hours)
                .values("name")
                .annotate(**{f: Sum(f) for f in tools}, result_ms_max=Max("result_ms_max"))
                .order_by()
            )
            RollupHour.objects.create(**at, folded_at=now)
    return len(days)


def rollup_rebuild() -> None:
    """Drop the whole roll-up (the next fold counts every hour again)."""
    with transaction.atomic():
        _rollup_lock()
        for model in (*_DATA_MODELS, RollupHour):
            model.objects.all().delete()
