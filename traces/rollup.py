"""The dashboard's figures: read from the hourly roll-up where it holds the hour, counted
from the raw traces and steps where it does not.

One function, ``hour_rows``, answers for any set of time ranges: the fold stores its
answer for whole hours (``rollup_services``), the dashboard asks it live for what the
roll-up does not hold (the period's ragged ends, the current hour, hours with runs still
going). Both sides therefore count the same way:

- runs by the hour their trace was created, per agent and ``metadata.endpoint``;
- run durations (finished runs with a start and an end) in log buckets 5 % wide
  (``duration_bucket``): a percentile read from them is within 2.5 % of the exact one
  (durations under 1 ms, and negative ones from skewed clocks, read as 0);
- tool calls by the hour of their ``tool_call`` step, a call failed if it has an
  ``error`` child (whenever that child came: ``stats.failing_tools`` wants the child in
  the period too, which is the same for a period that ends now, as the dashboard's do);
  tool durations from ``tool_result`` steps.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db.models import Count, Max, Q, Sum, TextField, Value
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Coalesce

from .models import Step, Trace
from .rollup_models import Grain, RollupHour, RunDurationsHourly, RunsHourly, ToolsHourly
from .stats import BucketStart, DurationMs, Outcomes

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
RATIO = 1.05  # bucket width: a value is reported as the bucket's geometric middle
_LOG_RATIO = math.log(RATIO)

RUN_FIELDS = ("runs", "succeeded", "failed", "cancelled", "prompt_tokens", "completion_tokens")
TOOL_FIELDS = ("calls", "failures", "results", "timed_results", "result_ms_sum")


def duration_bucket(ms: float) -> int:
    """0 for under 1 ms; bucket i ≥ 1 holds [RATIO**(i-1), RATIO**i) ms."""
    if ms < 1:
        return 0
    return 1 + int(math.log(ms) / _LOG_RATIO)


def bucket_value(bucket: int) -> float:
    """The value a bucket stands for: its geometric middle (0 for bucket 0)."""
    return 0.0 if bucket <= 0 else RATIO ** (bucket - 0.5)


def percentile(histogram: Counter, q: float) -> float | None:
    """Nearest-rank percentile of the durations counted in ``histogram``."""
    n = sum(histogram.values())
    if not n:
        return None
    rank = min(n, max(1, math.ceil(q * n)))
    seen = 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if seen >= rank:
            return bucket_value(bucket)
    raise AssertionError("unreachable")


def hour_floor(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def hour_ceil(moment: datetime) -> datetime:
    floor = hour_floor(moment)
    return floor if floor == moment else floor + HOUR


_parsed: dict[str, datetime] = {}


def _hour(text: str | datetime) -> datetime:
    if isinstance(text, datetime):
        return text
    moment = _parsed.get(text)
    if moment is None:
        moment = _parsed[text] = datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    return moment


def _add(into: dict, row: dict, fields: tuple[str, ...]) -> None:
    for name in fields:
        into[name] = into.get(name, 0) + (row[name] or 0)


@dataclass
class HourRows:
    """Figures keyed by hour: runs by (hour, agent, endpoint), durations by (hour,
    bucket), tools by (hour, name). ``running`` counts runs not finished yet (never in a
    folded hour)."""

    runs: dict[tuple[datetime, str, str], dict] = field(default_factory=dict)
    durations: Counter = field(default_factory=Counter)
    tools: dict[tuple[datetime, str], dict] = field(default_factory=dict)
    running: int = 0

    def hours(self) -> set[datetime]:
        return (
            {k[0] for k in self.runs} | {k[0] for k in self.durations} | {k[0] for k in self.tools}
        )


def hour_rows(ranges: list[tuple[datetime, datetime]]) -> HourRows:
    """The hourly figures of everything created within ``ranges`` (half-open), from the
    raw rows: four grouped queries per range, each over one indexed time range (an OR of
    ranges is planned as a scan of the whole table on SQLite)."""
    out = HourRows()
    for start, end in ranges:
        _hour_rows_add(out, Q(created_at__gte=start, created_at__lt=end))
    return out


def _hour_rows_add(out: HourRows, when: Q) -> None:
    S = Trace.Status
    endpoint = Coalesce(
        KeyTextTransform("endpoint", "metadata"), Value(""), output_field=TextField()
    )
    traces = (
        Trace.objects.filter(when)
        .annotate(hour=BucketStart("created_at", "hour"), endpoint=endpoint)
        .values("hour", "agent_slug", "endpoint")
        .annotate(
            runs=Count("id"),
            succeeded=Count("id", filter=Q(status=S.SUCCEEDED)),
            failed=Count("id", filter=Q(status=S.FAILED)),
            cancelled=Count("id", filter=Q(status=S.CANCELLED)),
            running=Count("id", filter=Q(status__in=[S.QUEUED, S.RUNNING])),
            prompt_tokens=Sum("prompt_tokens"),
            completion_tokens=Sum("completion_tokens"),
        )
        .order_by()
    )
    for row in traces:
        out.running += row.pop("running")
        key = (_hour(row.pop("hour")), row.pop("agent_slug"), row.pop("endpoint"))
        entry = out.runs.setdefault(
            key, dict.fromkeys(RUN_FIELDS, 0) | {"timed_runs": 0, "duration_ms_sum": 0.0}
        )
        _add(entry, row, RUN_FIELDS)
    # Finished runs, said as "not going": ``status IN (finished)`` is planned on the
    # status index, a scan of every finished run ever; this stays on the time range.
    timed = (
        Trace.objects.filter(when, started_at__isnull=False, ended_at__isnull=False)
        .exclude(status__in=[S.QUEUED, S.RUNNING])
        .annotate(
            hour=BucketStart("created_at", "hour"),
            endpoint=endpoint,
            ms=DurationMs("started_at", "ended_at"),
        )
        .values_list("hour", "agent_slug", "endpoint", "ms")
        .order_by()
    )
    for hour, agent, endpoint_name, ms in timed:
        at = _hour(hour)
        entry = out.runs[(at, agent, endpoint_name)]
        entry["timed_runs"] += 1
        entry["duration_ms_sum"] += ms
        out.durations[(at, duration_bucket(ms))] += 1

    # Joined through the children's parent index (an EXISTS on kind and parent may be
    # planned on the kind index instead: every error step for every call).
    calls = (
        Step.objects.filter(when, kind=Step.Kind.TOOL_CALL)
        .annotate(hour=BucketStart("created_at", "hour"))
        .values("hour", "name")
        .annotate(
            calls=Count("id", distinct=True),
            failures=Count("id", distinct=True, filter=Q(children__kind=Step.Kind.ERROR)),
        )
        .order_by()
    )
    empty = dict.fromkeys(TOOL_FIELDS, 0) | {"result_ms_sum": 0.0, "result_ms_max": None}
    for row in calls:
        entry = out.tools.setdefault((_hour(row["hour"]), row["name"]), dict(empty))
        _add(entry, row, ("calls", "failures"))
    ms = DurationMs("started_at", "ended_at")
    results = (
        Step.objects.filter(when, kind=Step.Kind.TOOL_RESULT, started_at__isnull=False)
        .annotate(hour=BucketStart("created_at", "hour"))
        .values("hour", "name")
        .annotate(
            results=Count("id"),
            timed_results=Count(ms),
            result_ms_sum=Sum(ms),
            result_ms_max=Max(ms),
        )
        .order_by()
    )
    for row in results:
        entry = out.tools.setdefault((_hour(row["hour"]), row["name"]), dict(empty))
        _add(entry, row, ("results", "timed_results", "result_ms_sum"))
        if row["result_ms_max"] is not None:
            entry["result_ms_max"] = max(entry["result_ms_max"] or 0.0, row["result_ms_max"])


def hours_between(start: datetime, end: datetime) -> Iterator[datetime]:
    """Every hour from ``start`` (an hour's start) up to ``end``."""
    hour = start
    while hour < end:
        yield hour
        hour += HOUR


def folded_hours(start: datetime, end: datetime) -> set[datetime]:
    """The hours in [start, end) that the roll-up holds."""
    return set(
        RollupHour.objects.filter(grain=Grain.HOUR, hour__gte=start, hour__lt=end).values_list(
            "hour", flat=True
        )
    )


def _ranges_not_folded(
    since: datetime, until: datetime, *, days: bool
) -> tuple[list[tuple[datetime, datetime]], Q | None]:
    """The parts of [since, until) the roll-up does not hold, as few ranges as possible,
    and which of its rows hold the rest: folded days inside the period (when ``days``),
    folded hours elsewhere."""
    first, last = hour_ceil(since), hour_floor(until)
    if first >= last:
        return [(since, until)], None
    folded = folded_hours(first, last)
    whole_days: set[datetime] = set()
    rows = Q(pk__in=[])
    if days and last - first >= DAY:
        whole_days = set(
            RollupHour.objects.filter(
                grain=Grain.DAY, hour__gte=first, hour__lte=last - DAY
            ).values_list("hour", flat=True)
        )
        if whole_days:
            rows = Q(grain=Grain.DAY, hour__gte=first, hour__lte=last - DAY)
    ranges: list[tuple[datetime, datetime]] = []
    by_hour: list[tuple[datetime, datetime]] = []

    def add(into: list, a: datetime, b: datetime) -> None:
        if into and into[-1][1] == a:
            into[-1] = (into[-1][0], b)
        else:
            into.append((a, b))

    if since < first:
        add(ranges, since, first)
    for hour in hours_between(first, last):
        if hour not in folded:
            add(ranges, hour, hour + HOUR)
        elif hour.replace(hour=0) not in whole_days:
            add(by_hour, hour, hour + HOUR)
    if last < until:
        add(ranges, last, until)
    for a, b in by_hour:
        rows |= Q(grain=Grain.HOUR, hour__gte=a, hour__lt=b)
    return ranges, rows


@dataclass
class DashboardFigures:
    """Everything ``/`` shows for a period, in the shapes of ``traces.stats``' selectors."""

    outcomes: Outcomes
    percentiles: dict[float, float | None]
    usage: list[dict]
    hourly: dict[datetime, dict]  # runs and failures per hour (per day where days were read)
    slowest: list[dict]
    failing: list[dict]
    bucket: str = "day"

    def runs_over_time(self, *, bucket: str) -> list[dict]:
        """As ``stats.runs_over_time``: ``[{"at", "runs", "failed"}]`` per hour or day."""
        if bucket not in ("hour", "day"):
            raise ValueError(f"bucket must be hour or day, not {bucket!r}")
        if bucket == "hour" and self.bucket != "hour":
            raise ValueError("these figures were read by the day: ask for bucket='hour'")
        out: dict[datetime, dict] = {}
        for hour, row in self.hourly.items():
            at = hour if bucket == "hour" else hour.replace(hour=0)
            entry = out.setdefault(at, {"at": at, "runs": 0, "failed": 0})
            entry["runs"] += row["runs"]
            entry["failed"] += row["failed"]
        return [out[at] for at in sorted(out) if out[at]["runs"]]


def dashboard_figures(
    *,
    since: datetime,
    until: datetime,
    bucket: str = "day",
    quantiles: tuple[float, ...] = (0.5, 0.95),
    limit: int = 10,
) -> DashboardFigures:
    """The dashboard's figures for [since, until): folded hours from the roll-up tables
    (a handful of grouped queries over at most a few thousand rows), the rest counted
    live by ``hour_rows``. Equal to ``traces.stats``' raw selectors, percentiles within
    the bucket width (``duration_bucket``). ``bucket`` is the finest the runs over time
    will be asked for: with ``day``, folded days are read as one row each."""
    if bucket not in ("hour", "day"):
        raise ValueError(f"bucket must be hour or day, not {bucket!r}")
    ranges, rows = _ranges_not_folded(since, until, days=bucket == "day")
    live = hour_rows(ranges)
    usage: dict[tuple[str, str], dict] = {}
    hourly: dict[datetime, dict] = {}
    durations: Counter = Counter()
    tools: dict[str, dict] = {}
    run_fields = (*RUN_FIELDS, "timed_runs", "duration_ms_sum")
    if rows is not None:
        for row in (
            RunsHourly.objects.filter(rows)
            .values("agent_slug", "endpoint")
            .annotate(**{f"{f}_": Sum(f) for f in run_fields})
            .order_by()
        ):
            entry = usage.setdefault((row["agent_slug"], row["endpoint"]), {})
            _add(entry, {f: row[f"{f}_"] for f in run_fields}, run_fields)
        for row in (
            RunsHourly.objects.filter(rows)
            .values("hour")
            .annotate(runs_=Sum("runs"), failed_=Sum("failed"))
            .order_by()
        ):
            hourly[row["hour"]] = {"runs": row["runs_"], "failed": row["failed_"]}
        for slot, runs in (
            RunDurationsHourly.objects.filter(rows)
            .values("bucket")
            .annotate(n=Sum("runs"))
            .values_list("bucket", "n")
            .order_by()
        ):
            durations[slot] += runs
        for row in (
            ToolsHourly.objects.filter(rows)
            .values("name")
            .annotate(**{f"{f}_": Sum(f) for f in TOOL_FIELDS}, max_=Max("result_ms_max"))
            .order_by()
        ):
            tools[row["name"]] = {f: row[f"{f}_"] for f in TOOL_FIELDS} | {
                "result_ms_max": row["max_"]
            }
    for (hour, agent, endpoint), row in live.runs.items():
        _add(usage.setdefault((agent, endpoint), {}), row, run_fields)
        _add(hourly.setdefault(hour, {}), row, ("runs", "failed"))
    for (_, slot), runs in live.durations.items():
        durations[slot] += runs
    for (_, name), row in live.tools.items():
        entry = tools.setdefault(name, {"result_ms_max": None})
        _add(entry, row, TOOL_FIELDS)
        if row["result_ms_max"] is not None:
            entry["result_ms_max"] = max(entry["result_ms_max"] or 0.0, row["result_ms_max"])

    totals: dict = {}
    for row in usage.values():
        _add(totals, row, RUN_FIELDS)
    outcomes = Outcomes(
        total=totals.get("runs", 0),
        succeeded=totals.get("succeeded", 0),
        failed=totals.get("failed", 0),
        cancelled=totals.get("cancelled", 0),
        running=live.running,
    )
    slowest = [
        {
            "name": name,
            "calls": row["results"],
            "mean_ms": row["result_ms_sum"] / row["timed_results"]
            if row["timed_results"]
            else None,
            "max_ms": row["result_ms_max"],
        }
        for name, row in tools.items()
        if row.get("results")
    ]
    slowest.sort(key=lambda r: (r["mean_ms"] is None, -(r["mean_ms"] or 0), r["name"]))
    failing = [
        {
            "name": name,
            "calls": row["calls"],
            "failures": row["failures"],
            "rate": row["failures"] / row["calls"],
        }
        for name, row in tools.items()
        if row.get("failures")
    ]
    failing.sort(key=lambda r: (-r["failures"], r["name"]))
    return DashboardFigures(
        outcomes=outcomes,
        percentiles={q: percentile(durations, q) for q in quantiles},
        usage=[
            {
                "agent_slug": agent,
                "endpoint": endpoint or None,
                "runs": row["runs"],
                "failed": row["failed"],
                "prompt_tokens": row["prompt_tokens"],
                "completion_tokens": row["completion_tokens"],
            }
            for (agent, endpoint), row in sorted(usage.items())
        ],
        hourly=hourly,
        slowest=slowest[:limit],
        failing=failing[:limit],
        bucket=bucket,
    )
