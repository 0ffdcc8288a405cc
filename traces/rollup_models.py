"""The dashboard's hourly roll-up: what the runs and tool calls of one UTC hour add up to.

An hour is *folded* (``traces.rollup_services.rollup_fold``) once it has ended and every
run with a trace or a step in it has finished; its ``RollupHour`` row says so and its
figures are then read from these tables instead of the raw traces and steps. An hour
without a ``RollupHour`` row (the current one, one with a run still going, one whose
runs changed since: deleted, imported, re-opened by late spans) is computed live from the
raw rows, so the roll-up is a cache that never changes a figure (``traces.stats.
dashboard_figures``). Data rows exist only for hours that have a ``RollupHour`` row; both
are written and removed together.
"""

from __future__ import annotations

from django.db import models


class Grain(models.TextChoices):
    HOUR = "h", "hour"
    DAY = "d", "day"


def _grain() -> models.CharField:
    return models.CharField(max_length=1, choices=Grain.choices, default=Grain.HOUR)


class RollupHour(models.Model):
    """A folded hour (``grain`` h), or a folded UTC day (``grain`` d, ``hour`` its
    midnight): a day is folded again from its 24 folded hours, so that a month is read
    from 30 rows per agent and endpoint rather than 720."""

    hour = models.DateTimeField(help_text="Start of the UTC hour (or day).")
    grain = _grain()
    folded_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["grain", "hour"], name="rollup_hour_unique")]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H:00} ({self.grain}) folded {self.folded_at:%Y-%m-%d %H:%M}"


class RunsHourly(models.Model):
    """Runs created in the hour, per agent and endpoint (``metadata.endpoint``, "" when the
    run recorded none)."""

    hour = models.DateTimeField()
    grain = _grain()
    agent_slug = models.CharField(max_length=100, blank=True)
    endpoint = models.TextField(blank=True)
    runs = models.PositiveIntegerField(default=0)
    succeeded = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    cancelled = models.PositiveIntegerField(default=0)
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    timed_runs = models.PositiveIntegerField(
        default=0, help_text="Finished runs with a start and an end: the ones in the durations."
    )
    duration_ms_sum = models.FloatField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["grain", "hour", "agent_slug", "endpoint"], name="runs_hourly_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H:00} {self.agent_slug} via {self.endpoint}: {self.runs}"


class RunDurationsHourly(models.Model):
    """How many finished runs of the hour took a duration in ``bucket``
    (``traces.rollup.duration_bucket``: 5 % wide, so a percentile is within 2.5 %)."""

    hour = models.DateTimeField()
    grain = _grain()
    bucket = models.SmallIntegerField()
    runs = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["grain", "hour", "bucket"], name="run_durations_hourly_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H:00} bucket {self.bucket}: {self.runs}"


class ToolsHourly(models.Model):
    """Tool calls (``tool_call`` steps) created in the hour, per tool name: how many, how
    many have an ``error`` child, and the durations of the ``tool_result`` steps."""

    hour = models.DateTimeField()
    grain = _grain()
    name = models.CharField(max_length=200, blank=True)
    calls = models.PositiveIntegerField(default=0)
    failures = models.PositiveIntegerField(default=0)
    results = models.PositiveIntegerField(default=0, help_text="tool_result steps with a start.")
    timed_results = models.PositiveIntegerField(default=0, help_text="… and an end.")
    result_ms_sum = models.FloatField(default=0)
    result_ms_max = models.FloatField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["grain", "hour", "name"], name="tools_hourly_unique")
        ]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H:00} {self.name}: {self.calls}"
