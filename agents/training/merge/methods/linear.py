"""Linear: the weighted average of every input (mergekit's ``linear``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ..errors import MergeError
from .base import REQUIRED, MergeMethod, TensorJob
from .streaming import Release, _map_chunks, _workspace, output_flat


class Linear(MergeMethod):
    name = "linear"
    shared = {"normalize": True}
    per_model = {"weight": REQUIRED}
    base_required = False
    base_is_input = True

    def check_values(
        self,
        config,
        name: str,
        shared: Mapping[str, Any],
        per_model: Sequence[Mapping[str, Any]],
    ) -> None:
        super().check_values(config, name, shared, per_model)
        if shared["normalize"] and abs(sum(p["weight"] for p in per_model)) < 1e-12:
            raise MergeError(f"linear: weights sum to zero at {name}; cannot normalize")

    def merge(self, job: TensorJob) -> torch.Tensor:
        return linear(
            [i.tensor for i in job.inputs],
            [i.parameters["weight"] for i in job.inputs],
            normalize=job.shared["normalize"],
            device=job.device,
            out_dtype=job.out_dtype,
            out=job.out,
            release=job.release,
        )


def linear(
    tensors: Sequence[torch.Tensor],
    weights: Sequence[float],
    *,
    normalize: bool = True,
    device: torch.device | None = None,
    out_dtype: torch.dtype = torch.float32,
    out: torch.Tensor | None = None,
    release: Release | None = None,
) -> torch.Tensor:
    """Weighted average: sum(w_i x_i) / sum(w_i) (without the division if not normalize).

    Computed in fp32; the result is rounded once to ``out_dtype``.
    """
    device = device or tensors[0].device
    flats = [x.reshape(-1) for x in tensors]
    out = output_flat(out, flats[0].numel(), out_dtype, device)
    total = sum(weights)

    def chunk(start: int, end: int) -> None:
        acc = _workspace(1, end - start, device)[0].zero_()
        for x, w in zip(flats, weights, strict=True):
            acc.add_(x[start:end].to(device), alpha=w)
        if normalize:
            acc.div_(total)
        out[start:end].copy_(acc)

    _map_chunks(chunk, out.numel(), release=release)
    return out.view(tensors[0].shape)
