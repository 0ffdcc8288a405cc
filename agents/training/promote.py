"""The loop closes: a model artifact becomes an endpoint and a copy of an agent that uses
it, and (optionally) an experiment compares the copy with the agent it came from."""

from __future__ import annotations

from django.db import transaction

from agents.models import Agent, ModelEndpoint

from .models import ModelArtifact


class PromoteError(Exception):
    pass


def _free_slug(base: str) -> str:
    slug, n = base[:50], 2
    while Agent.objects.filter(slug=slug).exists():
        suffix = f"-{n}"
        slug, n = base[: 50 - len(suffix)] + suffix, n + 1
    return slug


@transaction.atomic
def artifact_promote(*, artifact: ModelArtifact, agent: Agent) -> tuple[ModelEndpoint, Agent]:
    """An ``hf`` endpoint serving ``artifact`` and a copy of ``agent`` on it (same prompt,
    toolset and strategy). Promoting again reuses the endpoint."""
    endpoint, _ = ModelEndpoint.objects.get_or_create(
        name=f"hf-{artifact.name}"[:100],
        defaults={"kind": ModelEndpoint.Kind.HF, "artifact": artifact, "model": artifact.name},
    )
    if endpoint.artifact_id != artifact.id:
        raise PromoteError(f"endpoint {endpoint.name!r} exists and serves another model")
    copy = Agent.objects.create(
        name=f"{agent.name} on {artifact.name}"[:100],
        slug=_free_slug(f"{agent.slug}-{artifact.name}"),
        description=f"{agent.name} with the model artifact {artifact.name}.",
        endpoint=endpoint,
        toolset=agent.toolset,
        system_prompt=agent.system_prompt,
        strategy=agent.strategy,
        strategy_config=agent.strategy_config,
        max_steps=agent.max_steps,
    )
    return endpoint, copy


def promote_and_compare(
    *, artifact: ModelArtifact, agent: Agent, dataset, limit: int | None = None, user=None
):
    """Promote, then start two experiments on ``dataset`` (the agent and its copy) on the
    workers; returns them (baseline first) for the comparison page."""
    from agents.evals.experiments import experiment_create, experiment_start

    endpoint, copy = artifact_promote(artifact=artifact, agent=agent)
    experiments = [
        experiment_create(agent=a, dataset=dataset, limit=limit, user=user) for a in (agent, copy)
    ]
    for experiment in experiments:
        experiment_start(experiment=experiment)
    return endpoint, copy, experiments
