"""Aggregate reads over traces and steps: an agent's success rate and the dashboard's
figures. Every query filters on an indexed time range first and groups in the database,
so a period of a million steps is answered without loading rows (``bench/dashboard.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Q

from .models import Trace


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
