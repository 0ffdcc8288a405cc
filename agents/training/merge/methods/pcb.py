"""PCB: Parameter Competition Balancing (Du et al., 2024); ours, not in mergekit."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ..errors import MergeError
from .base import MergeMethod, TensorJob
from .streaming import Release, _map_chunks, output_flat, stream_select


class Pcb(MergeMethod):
    name = "pcb"
    shared = {"density": 0.2, "lambda": 1.0}

    def check_values(
        self,
        config,
        name: str,
        shared: Mapping[str, Any],
        per_model: Sequence[Mapping[str, Any]],
    ) -> None:
        super().check_values(config, name, shared, per_model)
        if not 0 < shared["density"] <= 1:
            raise MergeError(f"pcb: density must be in (0, 1], got {shared['density']}")

    def merge(self, job: TensorJob) -> torch.Tensor:
        return pcb(
            job.base,
            [i.tensor for i in job.others],
            density=job.shared["density"],
            lambda_=job.shared["lambda"],
            device=job.device,
            out_dtype=job.out_dtype,
            out=job.out,
            release=job.release,
        )


def _unit_range_(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """(x - lo) / (hi - lo) in place, per row; a zero range gives 0 (the reference divides by 0)."""
    span = hi - lo
    return x.sub_(lo).div_(torch.where(span > 0, span, torch.ones_like(span)))


def pcb(
    base: torch.Tensor,
    others: Sequence[torch.Tensor],
    *,
    density: float = 0.2,
    lambda_: float = 1.0,
    outlier_ratio: float = 1e-4,
    device: torch.device | None = None,
    out_dtype: torch.dtype = torch.float32,
    out: torch.Tensor | None = None,
    release: Release | None = None,
) -> torch.Tensor:
    """Parameter Competition Balancing (Du et al., 2024), per tensor.

    Follows the authors' reference implementation: clamp |tau_i| to its
    [outlier_ratio, 1 - outlier_ratio] quantiles; intra-balancing
    exp(n * minmax(|tau_i|)^2); inter-balancing tanh(tau_i * sum_j tau_j);
    drop all but the top ``density`` fraction of the product per model,
    min-max rescale the survivors to [0, 1] as scores, and average the
    clamped task vectors with those scores. Result: base + lambda * merged.

    Three streaming passes (the quantiles, the score quantiles, the merge),
    so memory stays at the output plus chunk-sized temporaries.
    """
    if not 0 < density <= 1:
        raise ValueError(f"pcb density must be in (0, 1], got {density}")
    device = device or base.device
    n, numel = len(others), base.numel()
    b_flat = base.reshape(-1)
    xs = [x.reshape(-1) for x in others]
    out = output_flat(out, numel, out_dtype, device)
    if numel == 0:
        return out.view(base.shape)

    def task_vectors(where):
        b = b_flat[where].to(device=device, dtype=torch.float32)
        return torch.stack([torch.sub(x[where].to(device), b) for x in xs])

    lo_rank, hi_rank = int(numel * outlier_ratio), int(numel * (1 - outlier_ratio) - 1)
    bounds = stream_select(
        lambda where: task_vectors(where).abs_(),
        numel,
        [(i, r + 1) for i in range(n) for r in (lo_rank, hi_rank)],
        release,
    )
    lo = torch.tensor([bounds[2 * i][0] for i in range(n)], device=device).unsqueeze(1)
    hi = torch.tensor([bounds[2 * i + 1][0] for i in range(n)], device=device).unsqueeze(1)

    def scores(where):
        tv = task_vectors(where)
        magnitude = torch.maximum(torch.minimum(tv.abs(), hi), lo)
        intra = _unit_range_(magnitude, lo, hi).square_().mul_(n).exp_()
        return intra.mul_(tv.mul_(tv.sum(dim=0, keepdim=True)).tanh_())

    keep_rank = int(numel * (1 - density))
    limits = stream_select(
        scores, numel, [(i, r) for i in range(n) for r in (keep_rank + 1, numel)], release
    )
    floor = torch.tensor([limits[2 * i][0] for i in range(n)], device=device).unsqueeze(1)
    top = torch.tensor([limits[2 * i + 1][0] for i in range(n)], device=device).unsqueeze(1)

    def chunk(start: int, end: int) -> None:
        where = slice(start, end)
        scale = _unit_range_(torch.maximum(scores(where), floor), floor, top)
        tv = task_vectors(where)
        clamped = torch.copysign(torch.maximum(torch.minimum(tv.abs(), hi), lo), tv)
        merged = (clamped * scale).sum(dim=0).div_(scale.sum(dim=0).clamp_(min=1e-12))
        if lambda_ != 1:
            merged.mul_(lambda_)
        bc = b_flat[where].to(device=device, dtype=torch.float32)
        torch.add(bc, merged, out=out[start:end])

    _map_chunks(chunk, numel, release=release)
    return out.view(base.shape)
