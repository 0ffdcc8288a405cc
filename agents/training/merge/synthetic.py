"""Seeded random models in the Hugging Face llama layout, for tests and bench.

A "fine-tune" is the base plus seeded noise, so task vectors are small and
dense like real ones. Weights are written with the safetensors library (not
our writer), indexed when ``max_shard_bytes`` splits them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file

from .config import DTYPE_NAMES
from .safetensors_io import INDEX_NAME, SINGLE_NAME

_TOKENIZER = {
    "version": "1.0",
    "truncation": None,
    "padding": None,
    "added_tokens": [],
    "normalizer": None,
    "pre_tokenizer": {"type": "Whitespace"},
    "post_processor": None,
    "decoder": None,
    "model": {
        "type": "WordLevel",
        "vocab": {"<unk>": 0, "hello": 1, "world": 2},
        "unk_token": "<unk>",
    },
}


@dataclass(frozen=True)
class LlamaShape:
    layers: int = 2
    hidden: int = 16
    intermediate: int = 24
    vocab: int = 32
    heads: int = 4
    kv_heads: int = 2


def llama_tensor_shapes(shape: LlamaShape) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes of a llama checkpoint, in file order."""
    h, i, v = shape.hidden, shape.intermediate, shape.vocab
    kv = shape.kv_heads * (h // shape.heads)
    out: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (v, h)}
    for n in range(shape.layers):
        p = f"model.layers.{n}."
        out[p + "self_attn.q_proj.weight"] = (h, h)
        out[p + "self_attn.k_proj.weight"] = (kv, h)
        out[p + "self_attn.v_proj.weight"] = (kv, h)
        out[p + "self_attn.o_proj.weight"] = (h, h)
        out[p + "mlp.gate_proj.weight"] = (i, h)
        out[p + "mlp.up_proj.weight"] = (i, h)
        out[p + "mlp.down_proj.weight"] = (h, i)
        out[p + "input_layernorm.weight"] = (h,)
        out[p + "post_attention_layernorm.weight"] = (h,)
    out["model.norm.weight"] = (h,)
    out["lm_head.weight"] = (v, h)
    return out


def llama_config(shape: LlamaShape, dtype: torch.dtype) -> dict:
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": shape.hidden,
        "intermediate_size": shape.intermediate,
        "num_attention_heads": shape.heads,
        "num_key_value_heads": shape.kv_heads,
        "num_hidden_layers": shape.layers,
        "vocab_size": shape.vocab,
        "max_position_embeddings": 128,
        "rms_norm_eps": 1e-5,
        "tie_word_embeddings": False,
        "torch_dtype": DTYPE_NAMES[dtype],
    }


def synthetic_tensors(
    shape: LlamaShape,
    *,
    seed: int,
    base: dict[str, torch.Tensor] | None = None,
    noise: float = 0.01,
) -> dict[str, torch.Tensor]:
    """fp32 tensors: a random base (base=None) or ``base + noise * N(0, 1)``."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for name, dims in llama_tensor_shapes(shape).items():
        r = torch.randn(dims, generator=gen)
        if base is None:
            out[name] = (1.0 + 0.1 * r) if len(dims) == 1 else 0.02 * r
        else:
            out[name] = base[name].float() + noise * r
    return out


def synthetic_model_write(
    path: Path,
    tensors: dict[str, torch.Tensor],
    *,
    shape: LlamaShape,
    dtype: torch.dtype = torch.float32,
    max_shard_bytes: int | None = None,
    config_overrides: dict | None = None,
) -> Path:
    """Write ``tensors`` as a model directory with config and a tiny tokenizer."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    config = {**llama_config(shape, dtype), **(config_overrides or {})}
    (path / "config.json").write_text(json.dumps(config, indent=2))
    (path / "tokenizer.json").write_text(json.dumps(_TOKENIZER))
    (path / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "PreTrainedTokenizerFast", "unk_token": "<unk>"})
    )
    cast = {k: v.to(dtype).contiguous() for k, v in tensors.items()}
    if max_shard_bytes is None:
        save_file(cast, str(path / SINGLE_NAME), metadata={"format": "pt"})
        return path
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for name, t in cast.items():
        nbytes = t.numel() * t.element_size()
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][name] = t
        size += nbytes
    weight_map = {}
    for i, shard in enumerate(shards):
        fname = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, str(path / fname), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(shard, fname))
    total = sum(t.numel() * t.element_size() for t in cast.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (path / INDEX_NAME).write_text(json.dumps(index, indent=2))
    return path
