"""SLERP: spherical interpolation between the base and one other model."""

from __future__ import annotations

import math

import torch

from .base import REQUIRED, MergeMethod, TensorJob
from .streaming import Release, _map_chunks, output_flat


class Slerp(MergeMethod):
    name = "slerp"
    shared = {"t": REQUIRED}
    exact_models = 2

    def merge(self, job: TensorJob) -> torch.Tensor:
        return slerp(
            job.base,
            job.others[0].tensor,
            job.shared["t"],
            device=job.device,
            out_dtype=job.out_dtype,
            out=job.out,
            release=job.release,
        )


def slerp(
    base: torch.Tensor,
    other: torch.Tensor,
    t: float,
    *,
    dot_threshold: float = 0.9995,
    eps: float = 1e-8,
    device: torch.device | None = None,
    out_dtype: torch.dtype = torch.float32,
    out: torch.Tensor | None = None,
    release: Release | None = None,
) -> torch.Tensor:
    """Spherical interpolation of the whole tensor: t=0 gives base, t=1 gives other.

    Nearly collinear tensors (|cos| > dot_threshold) fall back to linear
    interpolation. Two streaming passes: norms and dot product (accumulated in
    float64), then the output.
    """
    device = device or base.device
    a, b = base.reshape(-1), other.reshape(-1)

    def products(start: int, end: int) -> tuple[float, float, float]:
        x = a[start:end].to(device=device, dtype=torch.float32)
        y = b[start:end].to(device=device, dtype=torch.float32)
        return float(torch.dot(x, x)), float(torch.dot(y, y)), float(torch.dot(x, y))

    parts = _map_chunks(products, a.numel(), release=release)
    sq_a, sq_b, dot_ab = (sum(p[j] for p in parts) for j in range(3))
    norm_a, norm_b = math.sqrt(sq_a), math.sqrt(sq_b)
    norm_a = norm_a if norm_a > eps else 1.0
    norm_b = norm_b if norm_b > eps else 1.0
    dot = min(1.0, max(-1.0, dot_ab / (norm_a * norm_b)))
    if abs(dot) > dot_threshold:
        coef_a, coef_b = 1 - t, t
    else:
        theta = math.acos(dot)
        sin_theta = math.sin(theta)
        coef_a = math.sin((1 - t) * theta) / sin_theta
        coef_b = math.sin(t * theta) / sin_theta
    out = output_flat(out, a.numel(), out_dtype, device)

    def chunk(start: int, end: int) -> None:
        x = torch.mul(a[start:end].to(device=device, dtype=torch.float32), coef_a)
        x.add_(b[start:end].to(device), alpha=coef_b)
        out[start:end].copy_(x)

    _map_chunks(chunk, a.numel(), release=release)
    return out.view(base.shape)
