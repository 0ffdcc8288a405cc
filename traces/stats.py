"""Aggregate reads over traces and steps: an agent's success rate and the dashboard's
figures. Every query filters on an indexed time range first and groups in the database,
so a period of a million steps is answered without loading rows (``bench/dashboard.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db.models import Avg, CharField, Count, F, FloatField, Func, Max, Q, QuerySet, Sum
from django.db.models.fields.json import KeyTextTransform

from .models import Step, Trace


@dataclass
class Outcomes:
    total: int
    succeeded: int
    failed: int
    cancelled: int
    running: int

    @property
    def finished(self) -> int:
        return self.succeeded + self.failed + self.cancelled

    @property
    def success_rate(self) -> float | None:
        """Succeeded among finished runs (cancelled ones count as not succeeded)."""
        return self.succeeded / self.finished if self.finished else None


def trace_outcomes(
    *, agent_slug: str | None = None, since: datetime | None = None, until: datetime | None = None
) -> Outcomes:
    qs = Trace.objects.all()
    if agent_slug:
        qs = qs.filter(agent_slug=agent_slug)
    if since:
        qs = qs.filter(created_at__gte=since)
    if until:
        qs = qs.filter(created_at__lt=until)
    S = Trace.Status
    row = qs.aggregate(
        total=Count("id"),
        succeeded=Count("id", filter=Q(status=S.SUCCEEDED)),
        failed=Count("id", filter=Q(status=S.FAILED)),
        cancelled=Count("id", filter=Q(status=S.CANCELLED)),
        running=Count("id", filter=Q(status__in=[S.QUEUED, S.RUNNING])),
    )
    return Outcomes(**row)


class DurationMs(Func):
    """Milliseconds from ``start`` to ``end`` as a plain number, in SQL: cheap to average
    and sort over a million rows (Django's datetime subtraction on SQLite calls back into
    Python for every row)."""

    output_field = FloatField()

    def __init__(self, start: str, end: str) -> None:
        super().__init__(F(start), F(end))

    def as_sql(self, compiler, connection, **extra):  # PostgreSQL and others
        start, end = (compiler.compile(e) for e in self.source_expressions)
        sql = f"(EXTRACT(EPOCH FROM ({end[0]} - {start[0]})) * 1000)"
        return sql, (*end[1], *start[1])

    def as_sqlite(self, compiler, connection, **extra):
        start, end = (compiler.compile(e) for e in self.source_expressions)
        sql = f"((julianday({end[0]}) - julianday({start[0]})) * 86400000.0)"
        return sql, (*end[1], *start[1])


def _in_period(qs: QuerySet, since: datetime, until: datetime) -> QuerySet:
    return qs.filter(created_at__gte=since, created_at__lt=until)


class BucketStart(Func):
    """The start of the hour or day a moment falls in, as text ``YYYY-MM-DD HH:00:00``
    (UTC). Plain SQL on both databases: Django's Trunc on SQLite calls back into Python
    for every row, which dominates a period of a hundred thousand runs."""

    output_field = CharField()

    def __init__(self, field: str, bucket: str) -> None:
        super().__init__(F(field))
        self.bucket = bucket

    def as_sql(self, compiler, connection, **extra):  # PostgreSQL
        sql, params = compiler.compile(self.source_expressions[0])
        fmt = "YYYY-MM-DD HH24:00:00" if self.bucket == "hour" else "YYYY-MM-DD 00:00:00"
        return f"to_char({sql} AT TIME ZONE 'UTC', '{fmt}')", params

    def as_sqlite(self, compiler, connection, **extra):
        sql, params = compiler.compile(self.source_expressions[0])
        fmt = "%Y-%m-%d %H:00:00" if self.bucket == "hour" else "%Y-%m-%d 00:00:00"
        # A parameter, not a literal: "%Y" in the SQL breaks Django's query logging.
        return f"strftime(%s, {sql})", (fmt, *params)


def runs_over_time(*, since: datetime, until: datetime, bucket: str) -> list[dict[str, Any]]:
    """Runs started per ``hour`` or ``day`` (UTC), with how many failed: ``[{"at",
    "runs", "failed"}]`` for the buckets that had runs, ``at`` an aware datetime."""
    if bucket not in ("hour", "day"):
        raise ValueError(f"bucket must be hour or day, not {bucket!r}")
    rows = (
        _in_period(Trace.objects.all(), since, until)
        .annotate(at=BucketStart("created_at", bucket))
        .values("at")
        .annotate(runs=Count("id"), failed=Count("id", filter=Q(status=Trace.Status.FAILED)))
        .order_by("at")
    )
    return [
        {**row, "at": datetime.strptime(row["at"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)}
        for row in rows
    ]


def duration_percentiles(
    *, since: datetime, until: datetime, quantiles: tuple[float, ...] = (0.5, 0.95)
) -> dict[float, float | None]:
    """Run durations (ms) at ``quantiles`` among finished runs of the period (nearest
    rank). One indexed scan that computes each duration in SQL; the sort happens here,
    once for all quantiles (a period holds at most a few hundred thousand runs)."""
    durations = sorted(
        _in_period(
            Trace.objects.filter(
                status__in=Trace.FINISHED, started_at__isnull=False, ended_at__isnull=False
            ),
            since,
            until,
        )
        .annotate(ms=DurationMs("started_at", "ended_at"))
        .values_list("ms", flat=True)
    )
    n = len(durations)
    return {
        q: durations[min(n - 1, max(0, math.ceil(q * n) - 1))] if n else None for q in quantiles
    }


def usage_by_agent_and_endpoint(*, since: datetime, until: datetime) -> list[dict[str, Any]]:
    """Runs, failures and tokens per (agent slug, endpoint name) pair: the endpoint
    is the one the run recorded (``metadata.endpoint``), so cost can be priced per
    endpoint even when an agent moved between them."""
    return list(
        _in_period(Trace.objects.all(), since, until)
        .annotate(endpoint=KeyTextTransform("endpoint", "metadata"))
        .values("agent_slug", "endpoint")
        .annotate(
            runs=Count("id"),
            failed=Count("id", filter=Q(status=Trace.Status.FAILED)),
            prompt_tokens=Sum("prompt_tokens"),
            completion_tokens=Sum("completion_tokens"),
        )
        .order_by("agent_slug", "endpoint")
    )


def slowest_tools(*, since: datetime, until: datetime, limit: int = 10) -> list[dict[str, Any]]:
    """Tools by mean duration of their finished calls (tool_result steps)."""
    return list(
        _in_period(
            Step.objects.filter(kind=Step.Kind.TOOL_RESULT, started_at__isnull=False),
            since,
            until,
        )
        .values("name")
        .annotate(
            calls=Count("id"),
            mean_ms=Avg(DurationMs("started_at", "ended_at")),
            max_ms=Max(DurationMs("started_at", "ended_at")),
        )
        .order_by("-mean_ms")[:limit]
    )


def failing_tools(*, since: datetime, until: datetime, limit: int = 10) -> list[dict[str, Any]]:
    """Tools by how many of their calls ended in an error (unknown tool, bad arguments,
    the tool failed): calls, failures and the failure rate, most failures first.

    One pass over the period's tool calls, counting those that have an error child; both
    sides are read from the (kind, created_at, name, …, parent) index, never the bulky rows.
    """
    errored_calls = _in_period(
        Step.objects.filter(kind=Step.Kind.ERROR, parent__isnull=False), since, until
    ).values("parent_id")
    rows = (
        _in_period(Step.objects.filter(kind=Step.Kind.TOOL_CALL), since, until)
        .values("name")
        .annotate(calls=Count("id"), failures=Count("id", filter=Q(pk__in=errored_calls)))
        .filter(failures__gt=0)
        .order_by("-failures", "name")[:limit]
    )
    return [{**row, "rate": row["failures"] / row["calls"]} for row in rows]
