"""Tiny random llama-layout models for the merge tests."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from agents.training.merge import config_load, merge_run
from agents.training.merge.synthetic import LlamaShape, synthetic_model_write, synthetic_tensors

TINY = LlamaShape(layers=3, hidden=16, intermediate=24, vocab=32, heads=4, kv_heads=2)


@dataclass
class Models:
    root: Path
    base: Path
    fts: list[Path]
    tensors: dict[Path, dict[str, torch.Tensor]]  # as stored (after dtype cast)

    def config(self, data: dict, name: str = "merge.yml") -> Path:
        path = self.root / name
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path


def models_make(root: Path, *, n: int = 3, dtype: torch.dtype = torch.float32) -> Models:
    base = synthetic_tensors(TINY, seed=100)
    paths = {root / "base": base}
    for i in range(1, n + 1):
        paths[root / f"ft{i}"] = synthetic_tensors(TINY, seed=100 + i, base=base, noise=0.01)
    stored = {}
    for i, (path, tensors) in enumerate(paths.items()):
        # the base is indexed (several shards), the fine-tunes single-file
        synthetic_model_write(
            path, tensors, shape=TINY, dtype=dtype, max_shard_bytes=3000 if i == 0 else None
        )
        stored[path] = {k: v.to(dtype) for k, v in tensors.items()}
    return Models(root=root, base=root / "base", fts=list(paths)[1:], tensors=stored)


@pytest.fixture
def models(tmp_path: Path) -> Models:
    return models_make(tmp_path)


def output_load(directory: Path) -> dict[str, torch.Tensor]:
    """Read a merged model back through its index, with the safetensors library."""
    index = json.loads((directory / "model.safetensors.index.json").read_text())
    out: dict[str, torch.Tensor] = {}
    for shard in sorted(set(index["weight_map"].values())):
        out.update(load_file(directory / shard))
    assert set(out) == set(index["weight_map"])
    return out


def merge(models: Models, data: dict, *, seed: int = 0, out: str = "out", **kwargs) -> dict:
    result = merge_run(
        config=config_load(path=models.config(data)),
        output_dir=models.root / out,
        seed=seed,
        **kwargs,
    )
    return output_load(result.output_dir)


# The embedded SmolLM2, de-quantised once per test session: the first test that asks for
# it runs `artifact_add --embedded-smollm2` for real; later ones register the same folder.
_SMOLLM2: dict[str, Path] = {}


@pytest.fixture
def smollm2(settings, tmp_path_factory):
    """A registered artifact named ``smol`` holding the de-quantised embedded SmolLM2."""
    from django.core.management import call_command

    from agents.training.artifacts import artifact_register
    from agents.training.models import ModelArtifact

    settings.TOOLTRAIL_ARTIFACTS_DIR = str(tmp_path_factory.mktemp("artifacts"))
    if "path" in _SMOLLM2:
        return artifact_register(
            name="smol", path=_SMOLLM2["path"], source=ModelArtifact.Source.EMBEDDED
        )
    call_command("artifact_add", "--embedded-smollm2", "--name", "smol")
    artifact = ModelArtifact.objects.get(name="smol")
    keep = tmp_path_factory.getbasetemp() / "smollm2-embedded"
    Path(artifact.path).rename(keep)
    ModelArtifact.objects.filter(pk=artifact.pk).update(path=str(keep))
    _SMOLLM2["path"] = keep
    artifact.refresh_from_db()
    return artifact
