"""Agents: a model endpoint, a toolset, a system prompt and a strategy."""

from __future__ import annotations

from django.db import models
from django.urls import reverse

from toolsapp.models import Toolset


class ModelEndpoint(models.Model):
    class Kind(models.TextChoices):
        OPENAI = "openai", "OpenAI-compatible HTTP"
        LOCAL = "local", "Local GGUF (llama.cpp)"
        SCRIPTED = "scripted", "Scripted (recorded replies)"
        HF = "hf", "Model artifact (transformers)"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    base_url = models.URLField(blank=True, help_text="openai: e.g. http://127.0.0.1:11434/v1")
    model = models.CharField(
        max_length=200, blank=True, help_text="Model name sent to the endpoint."
    )
    api_key_env = models.CharField(
        max_length=100,
        blank=True,
        help_text="Name of the environment variable holding the API key; the key is never stored.",
    )
    config = models.JSONField(
        default=dict,
        blank=True,
        help_text="scripted: {'script': [reply, …]}; local: {'model_path', 'n_ctx', 'max_tokens'}; "
        "hf: {'max_new_tokens', 'device'}; all: {'temperature', 'timeout'}.",
    )
    artifact = models.ForeignKey(
        "agents.ModelArtifact",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="endpoints",
        help_text="hf: the model artifact it serves.",
    )
    price_per_1k_prompt_tokens = models.DecimalField(
        max_digits=10,
        decimal_places=6,
        default=0,
        help_text="Cost of 1,000 prompt tokens (any currency; the dashboard adds it up).",
    )
    price_per_1k_completion_tokens = models.DecimalField(
        max_digits=10, decimal_places=6, default=0, help_text="Cost of 1,000 completion tokens."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

    def get_absolute_url(self) -> str:
        return reverse("agents:endpoint_detail", args=[self.pk])

    def settings_snapshot(self) -> dict:
        """The settings a run uses (never the API key, only where it is read from)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "base_url": self.base_url,
            "model": self.model,
            "api_key_env": self.api_key_env,
            "config": self.config,
        }


def _strategy_choices() -> list[tuple[str, str]]:
    # From the one registry of strategies (agents.strategies), read when needed.
    from agents.strategies import strategy_choices

    return strategy_choices()


class Agent(models.Model):
    class Strategy(models.TextChoices):
        FUNCTION_CALLING = "function_calling", "Function-calling loop"

    name = models.CharField(max_length=100)
    slug = models.SlugField(unique=True)
    description = models.TextField(blank=True)
    endpoint = models.ForeignKey(ModelEndpoint, on_delete=models.PROTECT, related_name="agents")
    toolset = models.ForeignKey(
        Toolset, null=True, blank=True, on_delete=models.SET_NULL, related_name="agents"
    )
    system_prompt = models.TextField(blank=True)
    strategy = models.CharField(
        max_length=32, choices=_strategy_choices, default=Strategy.FUNCTION_CALLING
    )
    strategy_config = models.JSONField(
        default=dict,
        blank=True,
        help_text="Strategy settings: self_refine {'max_rounds'}, dfsdt {'width'}, "
        "planner_caller_summarizer {'planner', 'caller', 'summarizer': endpoint names}.",
    )
    max_steps = models.PositiveIntegerField(
        default=10, help_text="Most model turns before the run fails."
    )
    deadline_seconds = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Longest a run may take, in seconds, before it ends failed; blank: the "
        "TOOLTRAIL_RUN_DEADLINE_SECONDS setting. Capped by TOOLTRAIL_RUN_DEADLINE_MAX_SECONDS.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        permissions = [("run_agent", "Can start and cancel agent runs")]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("agents:agent_detail", args=[self.slug])

    @property
    def run_deadline(self) -> float:
        """Seconds a run of this agent may last (the agent's own, else the default)."""
        from django.conf import settings

        chosen = self.deadline_seconds or settings.TOOLTRAIL_RUN_DEADLINE_SECONDS
        return float(min(chosen, settings.TOOLTRAIL_RUN_DEADLINE_MAX_SECONDS))


class AgentVersion(models.Model):
    """What an agent was at one moment: the exact prompt, strategy, tools (with their
    schemas) and endpoint settings a run used. A run records the version it ran with, so
    editing the agent, its toolset or its endpoint never rewrites what an old trace means.
    A new version is made only when the snapshot differs from the latest one."""

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    snapshot = models.JSONField()
    digest = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["agent", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["agent", "number"], name="agent_version_unique_number")
        ]

    def __str__(self) -> str:
        return f"{self.agent} v{self.number}"

    def get_absolute_url(self) -> str:
        return reverse("agents:agent_version", args=[self.agent.slug, self.number])


# Evaluation and training models live beside their code; imported here so Django registers them.
from agents.evals.models import Dataset, DatasetItem, Experiment, ExperimentResult  # noqa: E402
from agents.training.models import Job, ModelArtifact  # noqa: E402

__all__ = [
    "Agent",
    "AgentVersion",
    "Dataset",
    "DatasetItem",
    "Experiment",
    "ExperimentResult",
    "Job",
    "ModelArtifact",
    "ModelEndpoint",
]
