"""Model Stock (Jang et al., 2024), as mergekit 0.1.5's ``model_stock``.

The fine-tunes' offsets from the base, ``o_i = x_i - base``, give the mean
pairwise cosine ``c``; the result interpolates between the base and the
fine-tunes' average with ``t = N c / (1 + (N - 1) c)``:
``t * mean(x_i) + (1 - t) * base``. Where ``1 + (N - 1) c`` is (nearly) zero
the base is kept. With ``filter_wise`` the cosine and ``t`` are per row (the
last dimension), otherwise per tensor. Needs a base and at least two models.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .base import MergeMethod, TensorJob
from .streaming import CHUNK_ELEMENTS, Release, _map_chunks, output_flat


class ModelStock(MergeMethod):
    name = "model_stock"
    shared = {"filter_wise": False}
    min_non_base = 2

    def merge(self, job: TensorJob) -> torch.Tensor:
        return model_stock(
            job.base,
            [i.tensor for i in job.others],
            filter_wise=job.shared["filter_wise"],
            device=job.device,
            out_dtype=job.out_dtype,
            out=job.out,
            release=job.release,
        )


def _interpolation(cos: torch.Tensor, count: int) -> torch.Tensor:
    """t from the mean pairwise cosine; 0 (the base) at the singularity."""
    denominator = 1 + (count - 1) * cos
    singular = denominator.abs() < 1e-6
    safe = torch.where(singular, torch.ones_like(denominator), denominator)
    return torch.where(singular, torch.zeros_like(cos), count * cos / safe)


def _mean_cosine(sq: Sequence, dots: dict, count: int, like: torch.Tensor) -> torch.Tensor:
    """Mean over pairs of clamp(o_i . o_j / max(|o_i| |o_j|, 1e-6), -1, 1)."""
    norms = [torch.sqrt(torch.as_tensor(s, dtype=like.dtype, device=like.device)) for s in sq]
    cosines = [
        (
            torch.as_tensor(dots[i, j], dtype=like.dtype, device=like.device)
            / (norms[i] * norms[j]).clamp(min=1e-6)
        ).clamp(-1, 1)
        for i in range(count)
        for j in range(i + 1, count)
    ]
    return torch.stack(cosines).mean(dim=0)


def model_stock(
    base: torch.Tensor,
    others: Sequence[torch.Tensor],
    *,
    filter_wise: bool = False,
    device: torch.device | None = None,
    out_dtype: torch.dtype = torch.float32,
    out: torch.Tensor | None = None,
    release: Release | None = None,
) -> torch.Tensor:
    """Model Stock of ``others`` around ``base`` (fp32 arithmetic, rounded once)."""
    device = device or base.device
    count, numel = len(others), base.numel()
    cols = base.shape[-1] if base.dim() else 1
    b_flat = base.reshape(-1)
    xs = [x.reshape(-1) for x in others]
    out = output_flat(out, numel, out_dtype, device)
    if numel == 0:
        return out.view(base.shape)

    def offsets(start: int, end: int, rows: int):
        b = b_flat[start:end].to(device=device, dtype=torch.float32).view(rows, -1)
        xs_ = [x[start:end].to(device=device, dtype=torch.float32).view(rows, -1) for x in xs]
        return b, xs_, [x - b for x in xs_]

    def write(start: int, end: int, b, xs_, t: torch.Tensor) -> None:
        average = sum(xs_) / count
        out[start:end].copy_((t * average + (1 - t) * b).view(-1))

    if filter_wise:
        # rows are independent: one pass over blocks of whole rows
        def block(first: int, last: int) -> None:
            start, end = first * cols, last * cols
            b, xs_, offs = offsets(start, end, last - first)
            sq = [(o * o).sum(dim=-1) for o in offs]
            dots = {
                (i, j): (offs[i] * offs[j]).sum(dim=-1)
                for i in range(count)
                for j in range(i + 1, count)
            }
            t = _interpolation(_mean_cosine(sq, dots, count, b), count).unsqueeze(-1)
            write(start, end, b, xs_, t)

        row_release = None
        if release is not None:

            def row_release(first: int, last: int) -> None:
                release(first * cols, last * cols)

        rows_per_block = max(1, CHUNK_ELEMENTS // max(cols, 1))
        _map_chunks(block, numel // cols, release=row_release, size=rows_per_block)
        return out.view(base.shape)

    def sums(start: int, end: int):
        _, _, offs = offsets(start, end, 1)
        flat = [o[0] for o in offs]
        return [float(torch.dot(o, o)) for o in flat], {
            (i, j): float(torch.dot(flat[i], flat[j]))
            for i in range(count)
            for j in range(i + 1, count)
        }

    parts = _map_chunks(sums, numel, release=release)
    sq = [math.fsum(p[0][i] for p in parts) for i in range(count)]
    dots = {key: math.fsum(p[1][key] for p in parts) for key in parts[0][1]}
    t = _interpolation(_mean_cosine(sq, dots, count, torch.empty(0, device=device)), count)

    def chunk(start: int, end: int) -> None:
        b, xs_, _ = offsets(start, end, 1)
        write(start, end, b, xs_, t)

    _map_chunks(chunk, numel, release=release)
    return out.view(base.shape)
