"""A trace is one run of an agent (ours, an SDK's or any OpenTelemetry exporter's);
its steps are the model calls, tool calls and results, numbered 1, 2, 3… per trace.

Steps are append-only: a step is written once, complete, through
``traces.services.step_record``, and its sequence number is the cursor that the
websocket and the fallback endpoint serve ("steps after N").
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.urls import reverse


class Trace(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    class Source(models.TextChoices):
        RUNNER = "runner", "Tooltrail runner"
        SDK = "sdk", "Python SDK"
        OTLP = "otlp", "OpenTelemetry"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200, help_text="Usually the agent's name.")
    agent_slug = models.SlugField(max_length=100, blank=True, db_index=True)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.RUNNER)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True
    )
    input = models.TextField(blank=True)
    output = models.TextField(blank=True)
    error = models.TextField(blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="traces",
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    step_count = models.PositiveIntegerField(default=0)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    cancel_requested = models.BooleanField(default=False)
    worker = models.CharField(
        max_length=200, blank=True, help_text="Worker host and pid running it."
    )
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    deadline_at = models.DateTimeField(
        null=True, blank=True, help_text="When a running trace must have ended (database clock)."
    )
    otel_trace_id = models.CharField(
        max_length=32, blank=True, db_index=True, help_text="OTLP trace id (hex), if ingested."
    )
    model_calls = models.PositiveIntegerField(default=0)
    tool_calls = models.PositiveIntegerField(default=0)
    error_count = models.PositiveIntegerField(default=0)
    forked_from = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="forks",
        help_text="The trace this one re-runs from a step of.",
    )
    fork_seq = models.PositiveIntegerField(
        null=True, blank=True, help_text="The step of forked_from this run starts from."
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status", "heartbeat_at"]),
            # The trace list's keyset: newest first, id as the tie-break.
            models.Index(fields=["-created_at", "-id"], name="trace_list_keyset"),
            # The dashboard's counts and durations per period, read from the index alone.
            models.Index(
                fields=["created_at", "status", "started_at", "ended_at"],
                name="trace_created_status",
            ),
        ]
        permissions = [
            ("cancel_trace", "Can cancel any running or queued trace"),
            ("ingest_traces", "Can send traces (OTLP, SDK) and import them"),
        ]
        constraints = [
            # Spans of one OTLP trace, arriving in many requests, land in one trace.
            models.UniqueConstraint(
                fields=["otel_trace_id"],
                condition=models.Q(source__in=["otlp", "sdk"]) & ~models.Q(otel_trace_id=""),
                name="trace_otel_id_unique_when_ingested",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} · {self.created_at:%Y-%m-%d %H:%M:%S} · {self.status}"

    def get_absolute_url(self) -> str:
        return reverse("traces:trace_detail", args=[self.id])

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED

    @property
    def duration_seconds(self) -> float | None:
        if not self.started_at:
            return None
        from django.utils import timezone

        end = self.ended_at or timezone.now()
        return (end - self.started_at).total_seconds()

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def cost(self) -> float | None:
        """What the model calls cost at the price the run recorded in its metadata
        (``{"price": {"prompt_per_1k": …, "completion_per_1k": …}}``); None without one."""
        price = self.metadata.get("price") if isinstance(self.metadata, dict) else None
        if not isinstance(price, dict):
            return None
        try:
            return (
                self.prompt_tokens * float(price.get("prompt_per_1k") or 0)
                + self.completion_tokens * float(price.get("completion_per_1k") or 0)
            ) / 1000
        except (TypeError, ValueError):
            return None


class Step(models.Model):
    class Kind(models.TextChoices):
        MODEL_CALL = "model_call", "Model call"
        TOOL_CALL = "tool_call", "Tool call"
        TOOL_RESULT = "tool_result", "Tool result"
        ERROR = "error", "Error"
        FINAL = "final", "Final answer"
        # Kinds that traces from other agents bring (OpenTelemetry GenAI / OpenInference).
        AGENT = "agent", "Agent"
        CHAIN = "chain", "Chain"
        RETRIEVER = "retriever", "Retriever"
        SPAN = "span", "Span"

    class Status(models.TextChoices):
        OK = "ok", "OK"
        ERROR = "error", "Error"

    trace = models.ForeignKey(Trace, on_delete=models.CASCADE, related_name="steps")
    seq = models.PositiveIntegerField(help_text="1, 2, 3… within the trace; the live cursor.")
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="children"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    name = models.CharField(max_length=200, blank=True)
    input = models.JSONField(null=True, blank=True)
    output = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OK)
    tool_call_id = models.CharField(max_length=100, blank=True)
    span_id = models.CharField(max_length=16, blank=True, help_text="OTLP span id (hex).")
    parent_span_id = models.CharField(max_length=16, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["trace", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["trace", "seq"], name="step_seq_unique_per_trace")
        ]
        indexes = [
            # Parents arriving after their children are found by span id.
            models.Index(fields=["trace", "span_id"]),
            # The dashboard's tool figures (one kind of step over a time range), read from
            # the index alone: the rows themselves carry bulky JSON.
            models.Index(
                fields=["kind", "created_at", "name", "started_at", "ended_at", "parent"],
                name="step_kind_created",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.kind} {self.name}"

    @property
    def duration_ms(self) -> float | None:
        if self.started_at and self.ended_at:
            return (self.ended_at - self.started_at).total_seconds() * 1000
        return None


class StepBlob(models.Model):
    """The whole value of a step field too big for the step's row (see traces.limits):
    its JSON text (plain text for ``error``), loaded only when someone asks for it."""

    step = models.ForeignKey(Step, on_delete=models.CASCADE, related_name="blobs")
    field = models.CharField(max_length=16)
    text = models.TextField()
    size = models.PositiveBigIntegerField(help_text="Bytes of the whole value.")
    complete = models.BooleanField(
        default=True, help_text="False when even the blob was cut (over its own cap)."
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["step", "field"], name="step_blob_unique_field")
        ]

    def __str__(self) -> str:
        return f"{self.step} {self.field} ({self.size} bytes)"


class TraceTag(models.Model):
    """A free-form label on a trace ("regression", "good-example"), for finding it again."""

    trace = models.ForeignKey(Trace, on_delete=models.CASCADE, related_name="tags")
    name = models.CharField(max_length=64)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["trace", "name"], name="trace_tag_unique")]
        indexes = [models.Index(fields=["name"])]

    def __str__(self) -> str:
        return self.name


class SavedFilter(models.Model):
    """A named query of the trace list, per user."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="saved_trace_filters"
    )
    name = models.CharField(max_length=100)
    query = models.CharField(max_length=2000, help_text="The list's query string.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["user", "name"], name="saved_filter_unique_name")
        ]

    def __str__(self) -> str:
        return self.name


from .annotation_models import (  # noqa: E402,F401 - Django finds the app's models here
    Annotation,
    AnnotationQueue,
    AnnotationRevision,
    ErrorCategory,
    Export,
    QueueAssignment,
    QueueItem,
    Suggestion,
    Verdict,
)
from .rollup_models import (  # noqa: E402,F401 - the dashboard's hourly roll-up
    RollupHour,
    RunDurationsHourly,
    RunsHourly,
    ToolsHourly,
)
