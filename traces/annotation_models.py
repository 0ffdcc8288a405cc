"""Annotation: step labels, error categories, queues of items to label, judge
suggestions and dataset exports. Imported by ``traces.models`` so Django finds them.

A label (``Annotation``) belongs to one step (or, with no step, to the whole trace)
and one author. People's labels have ``role=human``; a reviewer's adjudication is the
one ``role=gold`` label of a step. Each save bumps ``version`` (optimistic locking)
and writes an ``AnnotationRevision`` (the audit history). Suggestions from a judge
model are ``Suggestion`` rows, never labels.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse


class ErrorCategory(models.Model):
    """The editable error taxonomy (seeded by a data migration)."""

    slug = models.SlugField(max_length=60, unique=True)
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    position = models.PositiveIntegerField(default=0)
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["position", "slug"]
        verbose_name_plural = "error categories"

    def __str__(self) -> str:
        return self.name


class Verdict(models.TextChoices):
    GOOD = "good", "Good"
    BAD = "bad", "Bad"
    NEUTRAL = "neutral", "Neutral"


class Annotation(models.Model):
    class Role(models.TextChoices):
        HUMAN = "human", "Human"
        GOLD = "gold", "Gold (adjudicated)"

    trace = models.ForeignKey("traces.Trace", on_delete=models.CASCADE, related_name="annotations")
    step = models.ForeignKey(
        "traces.Step", null=True, blank=True, on_delete=models.CASCADE, related_name="annotations"
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="annotations"
    )
    role = models.CharField(max_length=8, choices=Role.choices, default=Role.HUMAN)
    queue = models.ForeignKey(
        "traces.AnnotationQueue",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="annotations",
    )
    verdict = models.CharField(max_length=8, choices=Verdict.choices)
    category = models.ForeignKey(
        ErrorCategory, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    note = models.TextField(blank=True)
    corrected_call = models.JSONField(null=True, blank=True)
    score = models.FloatField(null=True, blank=True, help_text="Trace labels: 0 to 1.")
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["trace", "step__seq", "role", "created_at"]
        permissions = [
            ("annotate", "Can label steps and traces"),
            ("adjudicate", "Can adjudicate disagreements (gold labels)"),
            ("export", "Can export training datasets"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["step", "author", "role"],
                condition=Q(step__isnull=False),
                name="annotation_one_per_step_author_role",
            ),
            models.UniqueConstraint(
                fields=["trace", "author", "role"],
                condition=Q(step__isnull=True),
                name="annotation_one_per_trace_author_role",
            ),
            models.UniqueConstraint(
                fields=["step"],
                condition=Q(role="gold"),
                name="annotation_one_gold_per_step",
            ),
        ]

    def __str__(self) -> str:
        where = f"#{self.step.seq}" if self.step_id else "trace"
        return f"{self.verdict} on {where} by {self.author}"


class AnnotationRevision(models.Model):
    """One saved state of a label: who changed it, when, and what it said."""

    annotation = models.ForeignKey(Annotation, on_delete=models.CASCADE, related_name="revisions")
    version = models.PositiveIntegerField()
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    data = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["annotation", "version"]
        constraints = [
            models.UniqueConstraint(
                fields=["annotation", "version"], name="annotation_revision_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.annotation_id} v{self.version}"


class AnnotationQueue(models.Model):
    class Source(models.TextChoices):
        FILTER = "filter", "Saved trace filter"
        EXPERIMENT = "experiment", "Experiment failures"

    class StepKinds(models.TextChoices):
        ALL = "all", "All steps"
        TOOL_CALLS = "tool_calls", "Tool calls only"
        MODEL_CALLS = "model_calls", "Model calls only"

    class Assignment(models.TextChoices):
        PULL_NEXT = "pull_next", "Pull next"
        ROUND_ROBIN = "round_robin", "Round-robin"

    name = models.CharField(max_length=200)
    instructions = models.TextField(blank=True)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.FILTER)
    filter = models.JSONField(default=dict, blank=True, help_text="The saved trace filter.")
    step_kinds = models.CharField(max_length=16, choices=StepKinds.choices, default=StepKinds.ALL)
    overlap = models.PositiveSmallIntegerField(default=1, help_text="Annotators per item.")
    assignment = models.CharField(
        max_length=16, choices=Assignment.choices, default=Assignment.PULL_NEXT
    )
    annotators = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="annotation_queues"
    )
    judge_endpoint = models.CharField(
        max_length=200, blank=True, help_text="Name of a ModelEndpoint asked for suggestions."
    )
    judge_rubric = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("traces:queue_detail", args=[self.id])


class QueueItem(models.Model):
    """One step to label. ``claims`` counts annotators who hold or finished it;
    ``is_full`` (claims reached the queue's overlap) keeps "next" an index scan."""

    queue = models.ForeignKey(AnnotationQueue, on_delete=models.CASCADE, related_name="items")
    trace = models.ForeignKey("traces.Trace", on_delete=models.CASCADE, related_name="+")
    step = models.ForeignKey("traces.Step", on_delete=models.CASCADE, related_name="+")
    position = models.PositiveIntegerField()
    claims = models.PositiveSmallIntegerField(default=0)
    is_full = models.BooleanField(default=False)
    done_count = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["queue", "position"]
        indexes = [
            models.Index(fields=["queue", "is_full", "position"]),
            models.Index(fields=["queue", "done_count"]),
        ]
        constraints = [
            models.UniqueConstraint(fields=["queue", "position"], name="queue_item_position"),
            models.UniqueConstraint(fields=["queue", "step"], name="queue_item_step"),
        ]

    def __str__(self) -> str:
        return f"{self.queue_id} #{self.position}"


class QueueAssignment(models.Model):
    """An annotator's hold on an item: assigned (round-robin), claimed, done or skipped;
    ``expired`` when the claim outlived TOOLTRAIL_ANNOTATION_CLAIM_MINUTES and another
    annotator took the item over."""

    class Status(models.TextChoices):
        ASSIGNED = "assigned", "Assigned"
        CLAIMED = "claimed", "Claimed"
        DONE = "done", "Done"
        SKIPPED = "skipped", "Skipped"
        EXPIRED = "expired", "Expired (taken over)"

    OPEN = (Status.ASSIGNED, Status.CLAIMED)

    item = models.ForeignKey(QueueItem, on_delete=models.CASCADE, related_name="assignments")
    queue = models.ForeignKey(AnnotationQueue, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    position = models.PositiveIntegerField(help_text="The item's position, for ordering.")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.CLAIMED)
    claimed_at = models.DateTimeField(null=True, blank=True)
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["queue", "user", "status", "position"]),
            # Finds the claims that have expired (the claim query takes them over).
            models.Index(
                fields=["queue", "status", "claimed_at"], name="queue_assignment_claim_age"
            ),
        ]
        constraints = [
            models.UniqueConstraint(fields=["item", "user"], name="queue_assignment_once")
        ]

    def __str__(self) -> str:
        return f"{self.item_id} · {self.user_id} · {self.status}"

    @property
    def seconds(self) -> float | None:
        if self.claimed_at and self.done_at:
            return (self.done_at - self.claimed_at).total_seconds()
        return None


class Suggestion(models.Model):
    """A judge model's proposed label for a queue item: shown to annotators, never
    counted as a human label."""

    queue = models.ForeignKey(AnnotationQueue, on_delete=models.CASCADE, related_name="suggestions")
    item = models.OneToOneField(QueueItem, on_delete=models.CASCADE, related_name="suggestion")
    step = models.ForeignKey("traces.Step", on_delete=models.CASCADE, related_name="suggestions")
    endpoint = models.CharField(max_length=200)
    verdict = models.CharField(max_length=8, choices=Verdict.choices)
    category = models.ForeignKey(
        ErrorCategory, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    corrected_call = models.JSONField(null=True, blank=True)
    rationale = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.verdict} from {self.endpoint}"


class Export(models.Model):
    """A dataset export started from the UI; its files are zipped for download."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    format = models.CharField(max_length=8)
    queue = models.ForeignKey(
        AnnotationQueue, null=True, blank=True, on_delete=models.SET_NULL, related_name="exports"
    )
    filter = models.JSONField(default=dict, blank=True)
    split = models.FloatField(null=True, blank=True)
    seed = models.IntegerField(default=0)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    progress = models.FloatField(default=0.0)
    rows = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.format} export {self.id}"
