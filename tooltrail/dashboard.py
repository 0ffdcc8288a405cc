"""The home page: what is going on over a chosen period.

Figures come from ``traces.rollup.dashboard_figures`` (the hourly roll-up, and the raw
traces for the hours it does not hold: the same numbers as the aggregate selectors in
``traces.stats``, ``tests/traces/test_rollup.py``); cost is tokens times the
price per 1k tokens of the endpoint each run recorded. Every number links to the trace
list filtered to the runs behind it (``/traces/?agent=…&status=…&tool=…&since=…``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from agents.models import ModelEndpoint
from traces.rollup import dashboard_figures

PERIODS: dict[str, tuple[str, timedelta, str]] = {
    "24h": ("Last 24 hours", timedelta(hours=24), "hour"),
    "7d": ("Last 7 days", timedelta(days=7), "day"),
    "30d": ("Last 30 days", timedelta(days=30), "day"),
    "90d": ("Last 90 days", timedelta(days=90), "day"),
}
DEFAULT_PERIOD = "7d"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def traces_link(*, since: datetime, until: datetime | None = None, **filters: str) -> str:
    """The trace list filtered to ``filters`` (agent, status, tool) within the period."""
    params = {k: v for k, v in filters.items() if v}
    params["since"] = _iso(since)
    if until is not None:
        params["until"] = _iso(until)
    return f"{reverse('traces:trace_list')}?{urlencode(params)}"


def _buckets(since: datetime, until: datetime, bucket: str) -> list[datetime]:
    step = timedelta(hours=1) if bucket == "hour" else timedelta(days=1)
    start = since.replace(minute=0, second=0, microsecond=0)
    if bucket == "day":
        start = start.replace(hour=0)
    out = []
    while start < until:
        out.append(start)
        start += step
    return out


def _cost(prompt: int, completion: int, price: tuple[Decimal, Decimal] | None) -> Decimal:
    if price is None:
        return Decimal(0)
    return (Decimal(prompt) * price[0] + Decimal(completion) * price[1]) / 1000


def dashboard_view(request: HttpRequest) -> HttpResponse:
    period = request.GET.get("period", DEFAULT_PERIOD)
    if period not in PERIODS:
        period = DEFAULT_PERIOD
    label, span, bucket = PERIODS[period]
    until = timezone.now()
    since = until - span

    figures = dashboard_figures(since=since, until=until, bucket=bucket)
    outcomes = figures.outcomes
    percentiles = figures.percentiles
    prices = {
        e.name: (e.price_per_1k_prompt_tokens, e.price_per_1k_completion_tokens)
        for e in ModelEndpoint.objects.all()
    }
    by_agent: dict[str, dict] = {}
    by_endpoint: dict[str, dict] = {}
    for row in figures.usage:
        cost = _cost(row["prompt_tokens"], row["completion_tokens"], prices.get(row["endpoint"]))
        for table, key in ((by_agent, row["agent_slug"]), (by_endpoint, row["endpoint"] or "")):
            entry = table.setdefault(
                key, {"name": key, "runs": 0, "failed": 0, "tokens": 0, "cost": Decimal(0)}
            )
            entry["runs"] += row["runs"]
            entry["failed"] += row["failed"]
            entry["tokens"] += row["prompt_tokens"] + row["completion_tokens"]
            entry["cost"] += cost
    for slug, entry in by_agent.items():
        entry["runs_url"] = traces_link(since=since, agent=slug)
        entry["failed_url"] = traces_link(since=since, agent=slug, status="failed")

    counts = {row["at"]: row for row in figures.runs_over_time(bucket=bucket)}
    series = []
    for at in _buckets(since, until, bucket):
        row = counts.get(at, {"runs": 0, "failed": 0})
        series.append(
            {
                "label": at.strftime("%H:00" if bucket == "hour" else "%b %d"),
                "runs": row["runs"],
                "failed": row["failed"],
                "url": traces_link(since=at, until=at + _step(bucket)),
            }
        )
    slow = figures.slowest
    failing = figures.failing
    for row in slow + failing:
        row["url"] = traces_link(since=since, tool=row["name"])
    for row in failing:
        row["failed_url"] = traces_link(since=since, tool=row["name"], status="failed")

    return render(
        request,
        "tooltrail/dashboard.html",
        {
            "period": period,
            "period_label": label,
            "periods": [(key, value[0]) for key, value in PERIODS.items()],
            "bucket": bucket,
            "outcomes": outcomes,
            "error_rate": (outcomes.failed / outcomes.finished) if outcomes.finished else None,
            "p50_ms": percentiles[0.5],
            "p95_ms": percentiles[0.95],
            "by_agent": sorted(by_agent.values(), key=lambda e: -e["runs"]),
            "by_endpoint": sorted(by_endpoint.values(), key=lambda e: -e["runs"]),
            "total_cost": sum((e["cost"] for e in by_agent.values()), Decimal(0)),
            "total_tokens": sum(e["tokens"] for e in by_agent.values()),
            "series": series,
            "slowest": slow,
            "failing": failing,
            "links": {
                "all": traces_link(since=since),
                "failed": traces_link(since=since, status="failed"),
                "succeeded": traces_link(since=since, status="succeeded"),
                "cancelled": traces_link(since=since, status="cancelled"),
            },
        },
    )


def _step(bucket: str) -> timedelta:
    return timedelta(hours=1) if bucket == "hour" else timedelta(days=1)
