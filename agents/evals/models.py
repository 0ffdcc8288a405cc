"""Evaluation datasets, their items, experiments (an agent × a dataset) and per-item results.

Each item of an experiment runs as an ordinary trace of the agent (through
``agents.services.agent_run_start``), so it opens in the debugger, can be annotated and
forked; the result row keeps the verdict, the reason and the efficiency figures.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.urls import reverse


class Dataset(models.Model):
    class Format(models.TextChoices):
        BFCL = "bfcl", "BFCL"
        JSONL = "jsonl", "Tooltrail JSONL"
        TRACES = "traces", "From traces"

    name = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    format = models.CharField(max_length=8, choices=Format.choices)
    item_count = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        app_label = "agents"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("agents:dataset_detail", args=[self.name])


class DatasetItem(models.Model):
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="items")
    index = models.PositiveIntegerField(help_text="0, 1, 2… in file order.")
    external_id = models.CharField(max_length=200, blank=True, help_text="e.g. BFCL's case id")
    category = models.CharField(max_length=64, blank=True, db_index=True)
    language = models.CharField(max_length=16, default="python")
    messages = models.JSONField(default=list)
    functions = models.JSONField(default=list, blank=True)
    function_format = models.CharField(max_length=8, default="jsonl")
    expected_calls = models.JSONField(null=True, blank=True)
    expected_answer = models.TextField(blank=True)

    class Meta:
        app_label = "agents"
        ordering = ["dataset", "index"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "index"], name="dataset_item_index_unique")
        ]

    def __str__(self) -> str:
        return f"{self.dataset} #{self.index} {self.external_id}"

    @property
    def question(self) -> str:
        users = [m.get("content") for m in self.messages if m.get("role") == "user"]
        return str(users[-1]) if users else ""


class Experiment(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    name = models.CharField(max_length=200)
    agent = models.ForeignKey("agents.Agent", on_delete=models.PROTECT, related_name="experiments")
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="experiments")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    limit = models.PositiveIntegerField(null=True, blank=True, help_text="First N items only.")
    concurrency = models.PositiveIntegerField(default=4, help_text="Most items running at once.")
    scores = models.JSONField(default=dict, blank=True)
    judge = models.ForeignKey(
        "agents.ModelEndpoint",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="LLM-as-judge: grades each answer against the rubric (a score per item).",
    )
    rubric = models.TextField(blank=True)
    error = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        app_label = "agents"
        ordering = ["-created_at"]
        permissions = [("run_experiment", "Can import datasets and run experiments")]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("agents:experiment_detail", args=[self.pk])

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED


class ExperimentResult(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        SCORED = "scored", "Scored"
        ERROR = "error", "Error"

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="results")
    item = models.ForeignKey(DatasetItem, on_delete=models.CASCADE, related_name="results")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    trace_id = models.UUIDField(null=True, blank=True, db_index=True)
    valid = models.BooleanField(null=True)
    error_type = models.CharField(max_length=100, blank=True)
    reason = models.TextField(blank=True)
    output_calls = models.JSONField(null=True, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        app_label = "agents"
        ordering = ["experiment", "item__index"]
        constraints = [
            models.UniqueConstraint(
                fields=["experiment", "item"], name="experiment_result_unique_per_item"
            )
        ]
        indexes = [models.Index(fields=["experiment", "status"])]

    def __str__(self) -> str:
        return f"{self.experiment} · {self.item} · {self.status}"
