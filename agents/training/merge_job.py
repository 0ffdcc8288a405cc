"""Merge jobs: the streaming merge engine (``agents.training.merge``) run as a job over
artifacts, and merge search (coefficients chosen by scores on evaluation datasets)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from . import merge as merge_engine  # loads torch when first used
from .artifacts import artifact_register, artifacts_dir
from .jobs import JobContext, JobError
from .models import Job, ModelArtifact

ARTIFACT_PREFIX = "artifact:"


def _artifact_path(value: Any, parents: dict[str, ModelArtifact]) -> Any:
    """A model reference in the YAML: ``artifact:NAME`` or a bare artifact name → its path."""
    if not isinstance(value, str):
        return value
    name = value[len(ARTIFACT_PREFIX) :] if value.startswith(ARTIFACT_PREFIX) else value
    artifact = ModelArtifact.objects.filter(name=name).first()
    if artifact is None:
        if value.startswith(ARTIFACT_PREFIX):
            raise JobError(f"the merge config names artifact {name!r}, which does not exist")
        return value  # a path on this machine
    parents[artifact.name] = artifact
    return artifact.path


def merge_yaml_resolve(data: Any) -> tuple[Any, list[ModelArtifact]]:
    """Replace artifact names in a parsed mergekit config by their directories."""
    if not isinstance(data, dict):
        raise JobError("the merge config must be a YAML mapping")
    parents: dict[str, ModelArtifact] = {}
    data = dict(data)
    if "base_model" in data:
        data["base_model"] = _artifact_path(data["base_model"], parents)
    if isinstance(data.get("tokenizer_source"), str) and data["tokenizer_source"] not in (
        "base",
        "union",
    ):
        data["tokenizer_source"] = _artifact_path(data["tokenizer_source"], parents)
    if isinstance(data.get("models"), list):
        data["models"] = [
            {**m, "model": _artifact_path(m.get("model"), parents)} if isinstance(m, dict) else m
            for m in data["models"]
        ]
    if isinstance(data.get("slices"), list):
        slices = []
        for piece in data["slices"]:
            if isinstance(piece, dict) and isinstance(piece.get("sources"), list):
                piece = {
                    **piece,
                    "sources": [
                        {**s, "model": _artifact_path(s.get("model"), parents)}
                        if isinstance(s, dict)
                        else s
                        for s in piece["sources"]
                    ],
                }
            slices.append(piece)
        data["slices"] = slices
    return data, list(parents.values())


def merge_config_check(text: str):
    """Parse and check a pasted mergekit YAML (artifact names allowed) before any job."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise JobError(f"the merge config is not valid YAML: {exc}") from exc
    resolved, parents = merge_yaml_resolve(data)
    return merge_engine.config_parse(data=resolved), parents


def _merge_into(
    job: Job, context: JobContext, text: str, output: Path, *, share: tuple[float, float] = (0, 1)
):
    config, parents = merge_config_check(text)
    low, high = share

    def progress(p) -> None:
        context.progress(
            low + (high - low) * p.tensors_done / p.tensors_total,
            f"{p.tensors_done}/{p.tensors_total} tensors: {p.name}",
        )

    result = merge_engine.merge_run(
        config=config,
        output_dir=output,
        device=context.device,
        seed=int(job.config.get("seed", 0)),
        progress=progress,
        cancel=context.cancelled,
    )
    return result, parents


def merge_job_run(job: Job, context: JobContext) -> None:
    text = job.config.get("yaml") or ""
    output = artifacts_dir() / job.name
    if output.exists():
        raise JobError(f"{output} exists already")
    context.log(f"merging into {output}")
    result, parents = _merge_into(job, context, text, output)
    context.metric(
        tensors=result.tensors,
        gib_written=round(result.bytes_written / 2**30, 3),
        merge_s=round(result.seconds, 2),
    )
    artifact = artifact_register(
        name=job.name,
        path=output,
        source=ModelArtifact.Source.JOB,
        parents=parents,
        job=job,
        config={"merge_yaml": text, "seed": job.config.get("seed", 0)},
    )
    Job.objects.filter(pk=job.pk).update(output=artifact)
    context.log(
        f"artifact {artifact.name}: {artifact.parameters:,} parameters, {artifact.dtype}, sha256 {artifact.sha256[:12]}"
    )


def merge_search_job_run(job: Job, context: JobContext) -> None:
    from .merge_search import merge_search_run

    merge_search_run(job, context)
