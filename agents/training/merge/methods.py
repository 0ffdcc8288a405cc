"""Merge methods as pure functions over tensors (no I/O, no Django).

Inputs may be any float dtype (bf16/fp16/fp32, possibly memory-mapped views);
all arithmetic is fp32 and the result is an fp32 tensor of the base's shape.
Per-tensor semantics follow mergekit 0.1.5 where mergekit has the method;
see docs/merge.md for the few deliberate differences.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

# Elementwise phases run over flat chunks so their temporaries stay small.
CHUNK_ELEMENTS = 1 << 22
# Sample size used to bracket a quantile before the exact selection.
_SAMPLE = 1 << 16
_DIRECT_SELECT = 1 << 18


def _f32(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A private fp32 copy on ``device`` (never an alias of the input)."""
    if x.dtype == torch.float32 and x.device == device:
        return x.clone()
    return x.to(device=device, dtype=torch.float32)


def kth_smallest(values: torch.Tensor, rank: int) -> torch.Tensor:
    """Exact ``rank``-th smallest (1-based) element of a 1-D tensor, in O(n).

    A fixed pseudo-random sample brackets the answer; only the elements inside
    the bracket go to ``kthvalue``. If the bracket misses (it practically never
    does), fall back to ``kthvalue`` on everything: the result is exact either way.
    """
    n = values.numel()
    if not 1 <= rank <= n:
        raise ValueError(f"rank {rank} out of range for {n} elements")
    if n <= _DIRECT_SELECT:
        return torch.kthvalue(values, rank).values
    gen = torch.Generator(device="cpu").manual_seed(n)
    idx = torch.randint(0, n, (_SAMPLE,), generator=gen).to(values.device)
    sample = values[idx].sort().values
    pos = (rank - 0.5) / n * _SAMPLE
    margin = 8 * math.sqrt(_SAMPLE * 0.25) + 8
    lo_i, hi_i = int(pos - margin), int(pos + margin)
    lo = sample[lo_i] if lo_i >= 0 else None
    hi = sample[hi_i] if hi_i < _SAMPLE else None
    below = int((values < lo).sum()) if lo is not None else 0
    if lo is not None and hi is not None:
        inside = (values >= lo) & (values <= hi)
    elif lo is not None:
        inside = values >= lo
    elif hi is not None:
        inside = values <= hi
    else:
        return torch.kthvalue(values, rank).values
    candidates = values[inside]
    if below < rank <= below + candidates.numel():
        return torch.kthvalue(candidates, rank - below).values
    return torch.kthvalue(values, rank).values


def topk_mask(values: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean mask of exactly ``k`` largest entries; ties keep the lowest indices."""
    flat = values.reshape(-1)
    n = flat.numel()
    if k >= n:
        return torch.ones_like(values, dtype=torch.bool)
    if k <= 0:
        return torch.zeros_like(values, dtype=torch.bool)
    threshold = kth_smallest(flat, n - k + 1)
    mask = flat > threshold
    need = k - int(mask.sum())
    if need > 0:
        ties = (flat == threshold).nonzero().squeeze(1)
        mask[ties[:need]] = True
    return mask.reshape(values.shape)


def _l1_rescale_(masked: torch.Tensor, before: torch.Tensor, eps: float = 1e-7) -> None:
    """Scale ``masked`` in place so its L1 norm matches ``before`` (mergekit's rescale)."""
    after = masked.abs().sum()
    if before < eps or after < eps:
        return
    masked.mul_(before / after)


def sparsify_magnitude_(delta: torch.Tensor, density: float, *, rescale: bool) -> None:
    """Keep the ``density`` fraction of largest-magnitude entries (TIES trim), in place."""
    if density >= 1:
        return
    if density <= 0 or delta.numel() == 0:
        delta.zero_()
        return
    k = max(1, int(density * delta.numel()))
    magnitude = delta.abs()
    before = magnitude.sum() if rescale else None
    mask = topk_mask(magnitude, k)
    del magnitude
    delta.mul_(mask)
    if rescale:
        _l1_rescale_(delta, before)


def random_keep_mask(shape: torch.Size, density: float, generator: torch.Generator) -> torch.Tensor:
    """DARE's random drop: keep each entry with probability ``density`` (CPU RNG)."""
    return torch.rand(shape, generator=generator, dtype=torch.float32) < density


def sparsify_random_(
    delta: torch.Tensor, density: float, *, rescale: bool, generator: torch.Generator
) -> None:
    """DARE drop (and L1 rescale, as mergekit does), in place."""
    if density >= 1:
        return
    before = delta.abs().sum() if rescale else None
    delta.mul_(random_keep_mask(delta.shape, density, generator).to(delta.device))
    if rescale:
        _l1_rescale_(delta, before)


def linear(
    tensors: Sequence[torch.Tensor],
    weights: Sequence[float],
    *,
    normalize: bool = True,
    device: torch.device | None = None,
) -> torch.Tensor:
    """Weighted average: sum(w_i x_i) / sum(w_i) (without the division if not normalize)."""
    device = device or tensors[0].device
    out = torch.zeros(tensors[0].shape, dtype=torch.float32, device=device)
    for x, w in zip(tensors, weights, strict=True):
        out.add_(x.to(device), alpha=w)
    if normalize:
        out.div_(sum(weights))
    return out


def generalized_task_arithmetic(
    base: torch.Tensor,
    others: Sequence[torch.Tensor],
    *,
    weights: Sequence[float],
    densities: Sequence[float],
    sparsification: str | None,
    consensus: bool,
    normalize: bool,
    rescale: bool,
    lambda_: float = 1.0,
    generators: Sequence[torch.Generator] | None = None,
    device: torch.device | None = None,
) -> torch.Tensor:
    """Task arithmetic, TIES and DARE (linear or TIES), as in mergekit.

    delta_i = x_i - base, sparsified ("magnitude": keep top density by |delta|;
    "random": DARE drop with ``generators[i]``), weighted by w_i. With consensus
    (TIES' "sum" sign election) only deltas whose sign matches the sign of the
    summed weighted deltas are kept, and ``normalize`` divides by the summed
    weights of the kept entries (the "disjoint mean"). Result: base + lambda * mix.
    """
    device = device or base.device
    out = _f32(base, device)
    n = len(others)
    deltas = torch.empty((n, *out.shape), dtype=torch.float32, device=device)
    for i, x in enumerate(others):
        d = deltas[i]
        torch.sub(x.to(device), out, out=d)
        if sparsification == "magnitude":
            sparsify_magnitude_(d, densities[i], rescale=rescale)
        elif sparsification == "random":
            sparsify_random_(d, densities[i], rescale=rescale, generator=generators[i])
        elif sparsification is not None:
            raise ValueError(f"unknown sparsification {sparsification!r}")
        d.mul_(weights[i])

    flat_d = deltas.view(n, -1)
    flat_out = out.view(-1)
    w = torch.tensor(list(weights), dtype=torch.float32, device=device).unsqueeze(1)
    plain_divisor = float(w.sum())
    if abs(plain_divisor) < 1e-8:
        plain_divisor = 1.0
    for start in range(0, flat_out.numel(), CHUNK_ELEMENTS):
        chunk = flat_d[:, start : start + CHUNK_ELEMENTS]
        if consensus:
            positive = chunk.sum(dim=0) >= 0
            agree = torch.where(positive, chunk > 0, chunk < 0)
            mixed = (chunk * agree).sum(dim=0)
            if normalize:
                divisor = (w * agree).sum(dim=0)
                divisor[divisor == 0] = 1
                mixed.div_(divisor)
        else:
            mixed = chunk.sum(dim=0)
            if normalize:
                mixed.div_(plain_divisor)
        if lambda_ != 1:
            mixed.mul_(lambda_)
        flat_out[start : start + CHUNK_ELEMENTS].add_(mixed)
    return out


def slerp(
    base: torch.Tensor,
    other: torch.Tensor,
    t: float,
    *,
    dot_threshold: float = 0.9995,
    eps: float = 1e-8,
    device: torch.device | None = None,
) -> torch.Tensor:
    """Spherical interpolation of the whole tensor: t=0 gives base, t=1 gives other.

    Nearly collinear tensors (|cos| > dot_threshold) fall back to linear interpolation.
    """
    device = device or base.device
    a = base.to(device=device, dtype=torch.float32).reshape(-1)
    b = other.to(device=device, dtype=torch.float32).reshape(-1)
    if a.numel() == 0:
        return a.reshape(base.shape).clone()
    norm_a = float(torch.linalg.vector_norm(a))
    norm_b = float(torch.linalg.vector_norm(b))
    norm_a = norm_a if norm_a > eps else 1.0
    norm_b = norm_b if norm_b > eps else 1.0
    dot = float(torch.dot(a, b)) / (norm_a * norm_b)
    dot = min(1.0, max(-1.0, dot))
    if abs(dot) > dot_threshold:
        coef_a, coef_b = 1 - t, t
    else:
        theta = math.acos(dot)
        sin_theta = math.sin(theta)
        coef_a = math.sin((1 - t) * theta) / sin_theta
        coef_b = math.sin(t * theta) / sin_theta
    out = torch.mul(a, coef_a)
    out.add_(b, alpha=coef_b)
    return out.reshape(base.shape)


def _minmax_normalize_rows_(x: torch.Tensor) -> None:
    """(x - min) / (max - min) per row, in place; a constant row becomes 0."""
    lo = x.amin(dim=1, keepdim=True)
    span = x.amax(dim=1, keepdim=True) - lo
    x.sub_(lo).div_(torch.where(span > 0, span, torch.ones_like(span)))


def pcb(
    base: torch.Tensor,
    others: Sequence[torch.Tensor],
    *,
    density: float = 0.2,
    lambda_: float = 1.0,
    outlier_ratio: float = 1e-4,
    device: torch.device | None = None,
) -> torch.Tensor:
    """Parameter Competition Balancing (Du et al., 2024), per tensor.

    Follows the authors' reference implementation: clamp |tau_i| to its
    [outlier_ratio, 1 - outlier_ratio] quantiles; intra-balancing
    exp(n * minmax(|tau_i|)^2); inter-balancing tanh(tau_i * sum_j tau_j);
    drop all but the top ``density`` fraction of the product per model,
    min-max rescale the survivors to [0, 1] as scores, and average the
    clamped task vectors with those scores. Result: base + lambda * merged.
    """
    if not 0 < density <= 1:
        raise ValueError(f"pcb density must be in (0, 1], got {density}")
    device = device or base.device
    out = _f32(base, device)
    n, d = len(others), out.numel()
    tv = torch.empty((n, d), dtype=torch.float32, device=device)
    for i, x in enumerate(others):
        torch.sub(x.to(device).reshape(-1), out.reshape(-1), out=tv[i])
    if d == 0:
        return out

    magnitude = tv.abs()
    lo_rank, hi_rank = int(d * outlier_ratio), int(d * (1 - outlier_ratio) - 1)
    for i in range(n):
        lo = kth_smallest(magnitude[i], lo_rank + 1)
        hi = kth_smallest(magnitude[i], hi_rank + 1)
        magnitude[i].clamp_(lo, hi)

    cross = tv * tv.sum(dim=0, keepdim=True)
    cross.tanh_()
    score = magnitude.clone()
    _minmax_normalize_rows_(score)
    score.square_().mul_(n).exp_().mul_(cross)
    del cross

    keep_rank = int(d * (1 - density))
    for i in range(n):
        row = score[i]
        floor = kth_smallest(row, keep_rank + 1)
        row.clamp_(min=floor)
    _minmax_normalize_rows_(score)

    clamped = magnitude.mul_(tv.sign_())
    del tv
    merged = (clamped * score).sum(dim=0)
    merged.div_(score.sum(dim=0).clamp_(min=1e-12))
    if lambda_ != 1:
        merged.mul_(lambda_)
    out.view(-1).add_(merged)
    return out
