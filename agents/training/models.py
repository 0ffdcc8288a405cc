"""Model artifacts (Hugging Face layout directories) and GPU jobs (merge, merge search,
fine-tune) that make them. Jobs run on Celery's ``gpu`` queue (CUDA when the worker has
it, CPU otherwise), report progress, logs and metrics live, and can be cancelled."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.urls import reverse

from agents.evals.models import Experiment


class ModelArtifact(models.Model):
    class Source(models.TextChoices):
        PATH = "path", "Local path"
        UPLOAD = "upload", "Upload"
        JOB = "job", "Job output"
        EMBEDDED = "embedded", "Embedded SmolLM2 (GGUF, de-quantised)"

    name = models.SlugField(max_length=100, unique=True)
    path = models.CharField(
        max_length=500, help_text="Directory with config.json and *.safetensors"
    )
    source = models.CharField(max_length=10, choices=Source.choices)
    architecture = models.CharField(max_length=100, blank=True)
    dtype = models.CharField(max_length=20, blank=True)
    parameters = models.BigIntegerField(default=0)
    size_bytes = models.BigIntegerField(default=0)
    sha256 = models.CharField(
        max_length=64, blank=True, help_text="Over every file, in name order."
    )
    parents = models.ManyToManyField("self", symmetrical=False, related_name="children", blank=True)
    made_by = models.ForeignKey(
        "agents.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    config = models.JSONField(
        default=dict, blank=True, help_text="What made it (merge YAML, SFT settings)."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        app_label = "agents"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("agents:artifact_detail", args=[self.name])


class Job(models.Model):
    class Kind(models.TextChoices):
        MERGE = "merge", "Merge"
        MERGE_SEARCH = "merge_search", "Merge search"
        SFT = "sft", "LoRA fine-tune (SFT)"

    # The same life cycle as an experiment's (and a trace's): one set of names.
    Status = Experiment.Status
    FINISHED = Experiment.FINISHED

    kind = models.CharField(max_length=16, choices=Kind.choices)
    name = models.SlugField(max_length=100, help_text="Name of the artifact it makes.")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    config = models.JSONField(
        default=dict, help_text="The settings that made it (re-run with edits)."
    )
    progress = models.FloatField(default=0.0, help_text="0..1")
    message = models.CharField(max_length=300, blank=True)
    log = models.TextField(blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    resources = models.JSONField(default=dict, blank=True, help_text="wall_s, peak_rss_mb, gpu_mb")
    error = models.TextField(blank=True)
    output = models.ForeignKey(
        ModelArtifact, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    device = models.CharField(max_length=16, blank=True)
    cancel_requested = models.BooleanField(default=False)
    worker = models.CharField(max_length=200, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        app_label = "agents"
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "heartbeat_at"])]
        permissions = [("run_job", "Can add model artifacts and run GPU jobs")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} → {self.name} ({self.status})"

    def get_absolute_url(self) -> str:
        return reverse("agents:job_detail", args=[self.pk])

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED
