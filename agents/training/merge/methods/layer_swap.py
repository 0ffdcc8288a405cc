"""layer_swap (ours): whole layers or named tensors taken from other models, the rest from the base."""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..errors import MergeError
from .base import MergeMethod, TensorJob, layer_index

if TYPE_CHECKING:
    from ..config import MergeConfig
    from ..safetensors_io import ModelDir


class LayerSwap(MergeMethod):
    name = "layer_swap"
    per_model = {"layers": None, "tensors": None}
    raw_parameters = True

    def prepare(self, config: MergeConfig, base: ModelDir, num_layers: int) -> dict[str, Path]:
        """Which tensors each non-base model takes over; overlaps are errors."""
        sources: dict[str, Path] = {}
        for entry in config.non_base:
            chosen: set[str] = set()
            layers = entry.parameters.get("layers")
            patterns = entry.parameters.get("tensors")
            if layers is None and patterns is None:
                raise MergeError(f"layer_swap: model {entry.path} needs layers: or tensors:")
            wanted_layers: set[int] = set()
            for item in [layers] if isinstance(layers, int) else layers or []:
                if isinstance(item, int) and not isinstance(item, bool):
                    wanted_layers.add(item)
                elif (
                    isinstance(item, list)
                    and len(item) == 2
                    and all(isinstance(x, int) and not isinstance(x, bool) for x in item)
                ):
                    wanted_layers.update(range(item[0], item[1]))
                else:
                    raise MergeError(
                        f"layer_swap: layers of {entry.path} must be integers or [start, end] ranges, "
                        f"got {item!r}"
                    )
            bad = sorted(i for i in wanted_layers if not 0 <= i < num_layers)
            if bad:
                raise MergeError(
                    f"layer_swap: layer {bad[0]} of {entry.path} is not in 0..{num_layers - 1}"
                )
            chosen.update(n for n in base.names if layer_index(n) in wanted_layers)
            if isinstance(patterns, str):
                patterns = [patterns]
            for pattern in patterns or []:
                if not isinstance(pattern, str):
                    raise MergeError(f"layer_swap: tensors of {entry.path} must be name patterns")
                hits = [n for n in base.names if fnmatch.fnmatchcase(n, pattern)]
                if not hits:
                    raise MergeError(
                        f"layer_swap: pattern {pattern!r} of {entry.path} matches no tensor"
                    )
                chosen.update(hits)
            for name in chosen:
                if name in sources:
                    raise MergeError(
                        f"layer_swap: {name} is taken from both {sources[name]} and {entry.path}"
                    )
                sources[name] = entry.path
        return sources

    def merge(self, job: TensorJob) -> torch.Tensor:
        return job.load(job.state.get(job.name, job.base_path))
