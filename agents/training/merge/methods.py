"""Merge methods as pure functions over tensors (no I/O, no Django).

Inputs may be any float dtype (bf16/fp16/fp32, possibly memory-mapped views);
all arithmetic is fp32 and the result, of the base's shape, is rounded once to
``out_dtype`` (fp32 by default). Inputs are never modified.
Per-tensor semantics follow mergekit 0.1.5 where mergekit has the method;
see docs/merge.md for the few deliberate differences.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import torch

# Every method walks tensors in flat chunks that stay in the CPU cache
# (128K-256K elements measured best).
CHUNK_ELEMENTS = 1 << 18
# Sample size used to bracket a quantile before the exact selection.
_SAMPLE = 1 << 16
_DIRECT_SELECT = 1 << 18
# Chunks are spread over this many threads, each running single-threaded torch
# ops (the driver sets torch.set_num_threads(1)). Many small multi-threaded ops
# stall badly when other processes compete for the cores; independent chunks
# on plain threads do not. Results are combined in chunk order: deterministic.
WORKERS = max(1, min(4, os.cpu_count() or 1))
_local = threading.local()
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


Release = Callable[[int, int], None]


def _map_chunks(
    fn: Callable[[int, int], object],
    numel: int,
    *,
    parallel: bool = True,
    release: Release | None = None,
) -> list:
    """``fn(start, end)`` for every chunk, results in chunk order.

    ``release(start, end)``, if given, runs after each chunk: the driver uses it
    to drop those elements' input pages, so a pass never holds a whole tensor.
    """
    global _pool
    if release is not None:
        inner = fn

        def fn(start: int, end: int) -> object:
            result = inner(start, end)
            release(start, end)
            return result

    spans = list(_chunks(numel))
    if not parallel or WORKERS == 1 or len(spans) == 1:
        return [fn(start, end) for start, end in spans]
    with _pool_lock:
        if _pool is None:  # one long-lived pool, so per-thread scratch buffers are reused
            _pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="merge")
    futures = [_pool.submit(fn, start, end) for start, end in spans]
    try:
        return [f.result() for f in futures]
    except BaseException:  # Ctrl-C or an error: do not leave queued chunks running
        for f in futures:
            f.cancel()
        raise


def _workspace(rows: int, width: int, device) -> torch.Tensor:
    """A per-thread fp32 scratch buffer of at least ``rows x width``."""
    key = (rows, str(device))
    cache = getattr(_local, "buffers", None)
    if cache is None:
        cache = _local.buffers = {}
    buf = cache.get(key)
    if buf is None or buf.shape[1] < width:
        buf = cache[key] = torch.empty((rows, max(width, CHUNK_ELEMENTS)), device=device)
    return buf[:, :width]


class _Keeper:
    """Sparsifies one model's task vector chunk by chunk, in place.

    ``keep_(delta, start)`` zeroes the dropped entries of the chunk that begins
    at flat position ``start`` (keeping the sign bit, as ``delta * 0`` does).
    Stateless keepers may see chunks in any order; the random one needs them
    in order, after ``begin()``.
    """

    scale = 1.0
    sparse = True
    stateless = True

    def begin(self) -> None:
        pass

    def keep_(self, delta: torch.Tensor, start: int) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class _KeepAll(_Keeper):
    sparse = False

    def keep_(self, delta: torch.Tensor, start: int) -> None:
        pass


class _DropAll(_Keeper):
    def keep_(self, delta: torch.Tensor, start: int) -> None:
        delta.zero_()


class _MagnitudeKeeper(_Keeper):
    """Exactly ``k`` largest magnitudes: all above ``threshold``, plus the entries
    equal to it up to flat position ``cutoff`` (the first ones in index order).

    Uses float ops (``threshold``/``copysign``) rather than boolean masks:
    on CPU they are several times faster.
    """

    def __init__(self, k: int) -> None:
        self.k = k
        self.threshold = 0.0
        self.cutoff = -1

    def keep_(self, delta: torch.Tensor, start: int) -> None:
        magnitude = delta.abs()
        kept = torch.nn.functional.threshold(magnitude, self.threshold, 0.0)
        if self.cutoff >= start:
            last = min(delta.numel(), self.cutoff + 1 - start)
            head = kept[:last]
            head.masked_fill_(magnitude[:last] == self.threshold, self.threshold)
        torch.copysign(kept, delta, out=delta)


class _RandomKeeper(_Keeper):
    """DARE: keep with probability ``density``; the generator is rewound per pass."""

    stateless = False

    def __init__(self, density: float, generator: torch.Generator) -> None:
        self.density = density
        self.generator = generator
        self._state = generator.get_state()

    def begin(self) -> None:
        self.generator.set_state(self._state)

    def keep_(self, delta: torch.Tensor, start: int) -> None:
        draw = torch.rand(delta.shape, generator=self.generator, dtype=torch.float32)
        delta.mul_((draw < self.density).to(delta.device))


def _chunks(numel: int):
    for start in range(0, numel, CHUNK_ELEMENTS):
        yield start, min(numel, start + CHUNK_ELEMENTS)


def stream_select(
    compute: Callable[[slice | torch.Tensor], torch.Tensor],
    numel: int,
    queries: Sequence[tuple[int, int]],
    release: Release | None = None,
) -> list[tuple[float, int, torch.Tensor]]:
    """Exact order statistics of rows of a tensor that is only ever seen in chunks.

    ``compute(where)`` returns the fp32 values ``[rows, len]`` at a slice or at
    an index tensor of positions. Each query ``(row, rank)`` asks for the
    ``rank``-th smallest (1-based) value of that row; the answer is
    ``(value, number of entries greater than it, sorted positions of the
    entries equal to it)``.

    A fixed pseudo-random sample brackets each answer; one streaming pass
    counts the entries below the bracket and collects those inside it, and
    ``kthvalue`` on that small set gives the exact value: O(n), no full sort,
    no tensor-sized buffer. A missed bracket (practically never) falls back
    to ``kthvalue`` on the whole row.
    """
    if numel <= _DIRECT_SELECT:
        full = compute(slice(0, numel))
        return [_select_in(full[row], rank, 0, torch.arange(numel)) for row, rank in queries]
    gen = torch.Generator(device="cpu").manual_seed(numel)
    picks = torch.randint(0, numel, (_SAMPLE,), generator=gen).sort().values
    # gathered chunk by chunk so the sample never pulls a whole tensor in at once
    bounds = torch.searchsorted(picks, torch.tensor([s for s, _ in _chunks(numel)] + [numel]))
    pieces = []
    for i, (start, end) in enumerate(_chunks(numel)):
        if bounds[i] < bounds[i + 1]:
            pieces.append(compute(picks[bounds[i] : bounds[i + 1]]))
        if release is not None:
            release(start, end)
    sample = torch.cat(pieces, dim=1).sort(dim=1).values
    margin = 6 * math.sqrt(_SAMPLE * 0.25) + 8  # 6 sigma of the sample quantile
    brackets = []
    for row, rank in queries:
        pos = (rank - 0.5) / numel * _SAMPLE
        lo_i, hi_i = int(pos - margin), int(pos + margin)
        lo = float(sample[row, lo_i]) if lo_i >= 0 else -math.inf
        hi = float(sample[row, hi_i]) if hi_i < _SAMPLE else math.inf
        brackets.append((lo, hi))

    def scan(start: int, end: int):
        values = compute(slice(start, end))
        found = []
        for (row, _), (lo, hi) in zip(queries, brackets, strict=True):
            v = values[row]
            at_least = v >= lo
            below = v.numel() - int(torch.count_nonzero(at_least))
            at = (at_least & (v <= hi)).nonzero().squeeze(1)
            positions = (at + start).to(
                device="cpu", dtype=torch.int32 if numel < 2**31 else torch.int64
            )
            found.append((below, v[at].cpu(), positions))
        return found

    parts = _map_chunks(scan, numel, release=release)
    answers = []
    for q, (row, rank) in enumerate(queries):
        below = sum(part[q][0] for part in parts)
        candidates = torch.cat([part[q][1] for part in parts])
        positions = torch.cat([part[q][2] for part in parts])
        if below < rank <= below + candidates.numel():
            answers.append(
                _select_in(candidates, rank - below, numel - below - candidates.numel(), positions)
            )
        else:
            full = compute(slice(0, numel))[row].cpu()
            answers.append(_select_in(full, rank, 0, torch.arange(numel)))
    return answers


def _select_in(
    values: torch.Tensor, rank: int, above_outside: int, positions: torch.Tensor
) -> tuple[float, int, torch.Tensor]:
    value = torch.kthvalue(values, rank).values
    above = above_outside + int(torch.count_nonzero(values > value))
    return float(value), above, positions[(values == value).cpu()]


def _magnitude_thresholds(
    base: torch.Tensor,
    others: list[torch.Tensor],
    keepers: list[_MagnitudeKeeper],
    device,
    release: Release | None,
) -> None:
    """Each model's exact top-k threshold of |delta|, in one streaming pass."""

    def magnitudes(where):
        b = base[where].to(device=device, dtype=torch.float32)
        return torch.stack([torch.sub(x[where].to(device), b).abs_() for x in others])

    numel = base.numel()
    queries = [(i, numel - keeper.k + 1) for i, keeper in enumerate(keepers)]
    answers = stream_select(magnitudes, numel, queries, release)
    for keeper, (threshold, above, equal) in zip(keepers, answers, strict=True):
        keeper.threshold = threshold
        ties = keeper.k - above  # >= 1: the threshold entry itself
        keeper.cutoff = int(equal[ties - 1]) if threshold > 0 else -1


def _l1_rescale_factors(
    base: torch.Tensor,
    others: list[torch.Tensor],
    keepers: list[_Keeper],
    device,
    release: Release | None,
    eps: float = 1e-7,
) -> None:
    """mergekit's ``rescale``: scale kept deltas so their L1 norm matches the full delta."""
    for keeper in keepers:
        keeper.begin()

    def sums(start: int, end: int):
        bc = base[start:end].to(device=device, dtype=torch.float32)
        row = []
        for x, keeper in zip(others, keepers, strict=True):
            delta = torch.sub(x[start:end].to(device), bc)
            before = float(delta.abs().sum(dtype=torch.float64))
            keeper.keep_(delta, start)
            row.append((before, float(delta.abs().sum(dtype=torch.float64))))
        return row

    parts = _map_chunks(
        sums, base.numel(), parallel=all(k.stateless for k in keepers), release=release
    )
    for i, keeper in enumerate(keepers):
        before = sum(part[i][0] for part in parts)
        after = sum(part[i][1] for part in parts)
        keeper.scale = 1.0 if before < eps or after < eps else before / after


def linear(
    tensors: Sequence[torch.Tensor],
    weights: Sequence[float],
    *,
    normalize: bool = True,
    device: torch.device | None = None,
    out_dtype: torch.dtype = torch.float32,
    release: Release | None = None,
) -> torch.Tensor:
    """Weighted average: sum(w_i x_i) / sum(w_i) (without the division if not normalize).

    Computed in fp32; the result is rounded once to ``out_dtype``.
    """
    device = device or tensors[0].device
    flats = [x.reshape(-1) for x in tensors]
    out = torch.empty(flats[0].numel(), dtype=out_dtype, device=device)
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
    out_dtype: torch.dtype = torch.float32,
    release: Release | None = None,
) -> torch.Tensor:
    """Task arithmetic, TIES and DARE (linear or TIES), as in mergekit.

    delta_i = x_i - base, sparsified ("magnitude": keep the int(density * n)
    largest |delta|; "random": DARE's drop with ``generators[i]``), rescaled
    to the full delta's L1 norm if ``rescale``, and weighted by w_i. With
    consensus (TIES' "sum" sign election) only deltas whose sign matches the
    sign of the summed weighted deltas count, and ``normalize`` divides by the
    summed weights of those entries (the "disjoint mean"); without it,
    ``normalize`` divides by the sum of all weights. Result: base + lambda * mix.

    Streams over chunks small enough to stay in cache; only the result
    (fp32 arithmetic, rounded once to ``out_dtype``) is tensor-sized.
    """
    device = device or base.device
    n, numel = len(others), base.numel()
    b_flat = base.reshape(-1)
    xs = [x.reshape(-1) for x in others]
    keepers: list[_Keeper]
    if sparsification == "magnitude":
        keepers = [
            _KeepAll()
            if d >= 1 or numel == 0
            else _DropAll()
            if d <= 0
            else _MagnitudeKeeper(max(1, int(d * numel)))
            for d in densities
        ]
        chosen = [i for i, k in enumerate(keepers) if isinstance(k, _MagnitudeKeeper)]
        if chosen:
            _magnitude_thresholds(
                b_flat, [xs[i] for i in chosen], [keepers[i] for i in chosen], device, release
            )
    elif sparsification == "random":
        keepers = [
            _RandomKeeper(d, g) if d < 1 else _KeepAll()
            for d, g in zip(densities, generators, strict=True)
        ]
    elif sparsification is None:
        keepers = [_KeepAll() for _ in others]
    else:
        raise ValueError(f"unknown sparsification {sparsification!r}")
    if rescale and any(k.sparse for k in keepers):
        _l1_rescale_factors(b_flat, xs, keepers, device, release)
    for keeper in keepers:
        keeper.begin()

    plain_divisor = sum(weights)
    if abs(plain_divisor) < 1e-8:
        plain_divisor = 1.0
    # With positive weights a zero divisor means nothing agreed (mixed == 0), so a
    # tiny floor gives mergekit's "divide by 1" result without a boolean mask.
    floor_divisor = all(w > 0 for w in weights)
    out = torch.empty(numel, dtype=out_dtype, device=device)

    def chunk(start: int, end: int) -> None:
        bc = b_flat[start:end].to(device=device, dtype=torch.float32)
        deltas = _workspace(n, end - start, device)
        for i, x in enumerate(xs):
            d = deltas[i]
            torch.sub(x[start:end].to(device), bc, out=d)
            keepers[i].keep_(d, start)
            if keepers[i].scale != 1.0:
                d.mul_(keepers[i].scale)
            d.mul_(weights[i])
        mixed = deltas[0].clone()
        for i in range(1, n):
            mixed.add_(deltas[i])
        if consensus:
            # elected sign: +1 where the summed weighted deltas are >= 0
            sign = torch.copysign(torch.ones_like(mixed), mixed)
            agreeing = deltas.mul_(sign).relu_()  # |delta| where the sign agrees, else 0
            mixed = agreeing[0].clone()
            for i in range(1, n):
                mixed.add_(agreeing[i])
            mixed.mul_(sign)
            if normalize:
                agree = agreeing.sign_()
                divisor = agree[0].mul_(weights[0])
                for i in range(1, n):
                    divisor.add_(agree[i], alpha=weights[i])
                if floor_divisor:
                    divisor.clamp_(min=1e-30)
                else:
                    divisor.masked_fill_(divisor == 0, 1.0)
                mixed.div_(divisor)
        elif normalize:
            mixed.div_(plain_divisor)
        if lambda_ != 1:
            mixed.mul_(lambda_)
        torch.add(bc, mixed, out=out[start:end])

    _map_chunks(chunk, numel, parallel=all(k.stateless for k in keepers), release=release)
    return out.view(base.shape)


def slerp(
    base: torch.Tensor,
    other: torch.Tensor,
    t: float,
    *,
    dot_threshold: float = 0.9995,
    eps: float = 1e-8,
    device: torch.device | None = None,
    out_dtype: torch.dtype = torch.float32,
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
    out = torch.empty(a.numel(), dtype=out_dtype, device=device)

    def chunk(start: int, end: int) -> None:
        x = torch.mul(a[start:end].to(device=device, dtype=torch.float32), coef_a)
        x.add_(b[start:end].to(device), alpha=coef_b)
        out[start:end].copy_(x)

    _map_chunks(chunk, a.numel(), release=release)
    return out.view(base.shape)


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
    out = torch.empty(numel, dtype=out_dtype, device=device)
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
