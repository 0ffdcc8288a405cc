"""The task-arithmetic family (mergekit's generalized task arithmetic):
task_arithmetic, TIES, DARE-linear and DARE-TIES, one class each over one kernel.

Each task vector ``delta = model - base`` goes through a ``Keeper`` that
sparsifies it chunk by chunk (keep all, top-k magnitude, random drop, ...);
``merge_deltas`` then rescales, weights, elects signs and adds to the base.
A new sparsification (DELLA's, say) is a new Keeper plus a subclass.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .base import REQUIRED, MergeMethod, TensorJob
from .streaming import (
    CHUNK_ELEMENTS,
    ELEMENTWISE_CHUNK,
    Release,
    _map_chunks,
    _workspace,
    output_flat,
    stream_select,
)


class Keeper:
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


class _KeepAll(Keeper):
    sparse = False

    def keep_(self, delta: torch.Tensor, start: int) -> None:
        pass


class _DropAll(Keeper):
    def keep_(self, delta: torch.Tensor, start: int) -> None:
        delta.zero_()


class _MagnitudeKeeper(Keeper):
    """Exactly ``k`` largest magnitudes: all above ``threshold``, plus the entries
    equal to it up to flat position ``cutoff`` (the first ones in index order).

    Uses float ops (``threshold``/``copysign``) rather than boolean masks:
    on CPU they are several times faster.
    """

    def __init__(self, k: int) -> None:
        self.k = k
        self.threshold = 0.0
        self.cutoff = -1
        # sorted flat positions of the entries equal to the threshold that are kept
        self.equal_kept = torch.empty(0, dtype=torch.int64)

    def keep_(self, delta: torch.Tensor, start: int) -> None:
        kept = torch.nn.functional.threshold(delta.abs(), self.threshold, 0.0)
        if self.cutoff >= start:
            bounds = torch.searchsorted(
                self.equal_kept, torch.tensor([start, start + delta.numel()])
            )
            first, last = int(bounds[0]), int(bounds[1])
            if first < last:
                at = (self.equal_kept[first:last] - start).to(kept.device)
                kept.index_fill_(0, at, self.threshold)
        delta.mul_(kept.sign_())  # = copysign(kept, delta), zeros' signs included; faster


class _RandomKeeper(Keeper):
    """DARE: keep with probability ``density``; the generator is rewound per pass."""

    stateless = False

    def __init__(self, density: float, generator: torch.Generator) -> None:
        self.density = density
        self.generator = generator
        self._state = generator.get_state()

    def begin(self) -> None:
        self.generator.set_state(self._state)

    def probability(self, delta: torch.Tensor, start: int) -> float | torch.Tensor:
        return self.density

    def keep_(self, delta: torch.Tensor, start: int) -> None:
        draw = torch.rand(delta.shape, generator=self.generator, dtype=torch.float32)
        delta.mul_(draw.to(delta.device) < self.probability(delta, start))


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
        if not isinstance(where, slice) or where.stop - where.start > CHUNK_ELEMENTS:
            return torch.stack([torch.sub(x[where].to(device), b).abs_() for x in others])
        # a chunk: into this thread's scratch rows (the caller copies what it keeps)
        rows = _workspace(len(others), where.stop - where.start, device)
        for row, x in zip(rows, others, strict=True):
            row.copy_(x[where])
            row.sub_(b).abs_()
        return rows

    numel = base.numel()
    queries = [(i, numel - keeper.k + 1) for i, keeper in enumerate(keepers)]
    answers = stream_select(magnitudes, numel, queries, release)
    for keeper, (threshold, above, equal) in zip(keepers, answers, strict=True):
        keeper.threshold = threshold
        ties = keeper.k - above  # >= 1: the threshold entry itself
        keeper.cutoff = int(equal[ties - 1]) if threshold > 0 else -1
        keeper.equal_kept = equal[:ties].to(torch.int64) if threshold > 0 else keeper.equal_kept


def _l1_rescale_factors(
    base: torch.Tensor,
    others: list[torch.Tensor],
    keepers: list[Keeper],
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


def make_keepers(
    b_flat: torch.Tensor,
    xs: Sequence[torch.Tensor],
    *,
    densities: Sequence[float],
    sparsification: str | None,
    generators: Sequence[torch.Generator] | None,
    device: torch.device,
    release: Release | None,
) -> list[Keeper]:
    """mergekit's sparsifications: "magnitude" (top-k |delta|), "random" (DARE) or None."""
    numel = b_flat.numel()
    keepers: list[Keeper]
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
        keepers = [_KeepAll() for _ in xs]
    else:
        raise ValueError(f"unknown sparsification {sparsification!r}")
    return keepers


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
    keepers = make_keepers(
        base.reshape(-1),
        [x.reshape(-1) for x in others],
        densities=densities,
        sparsification=sparsification,
        generators=generators,
        device=device,
        release=release,
    )
    return merge_deltas(
        base,
        others,
        keepers,
        weights=weights,
        consensus=consensus,
        normalize=normalize,
        rescale=rescale,
        lambda_=lambda_,
        device=device,
        out_dtype=out_dtype,
        release=release,
    )


def merge_deltas(
    base: torch.Tensor,
    others: Sequence[torch.Tensor],
    keepers: Sequence[Keeper],
    *,
    weights: Sequence[float],
    consensus: bool,
    normalize: bool,
    rescale: bool,
    lambda_: float,
    device: torch.device,
    out_dtype: torch.dtype,
    release: Release | None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """The shared core: sparsify each task vector with its keeper, optionally
    L1-rescale, weight, elect signs (``consensus``) and add to the base."""
    n, numel = len(others), base.numel()
    b_flat = base.reshape(-1)
    xs = [x.reshape(-1) for x in others]
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
    out = output_flat(out, numel, out_dtype, device)

    weight_col = torch.tensor(weights, dtype=torch.float32, device=device).unsqueeze(1)
    one = torch.ones((), device=device)

    def rows_sum(rows: torch.Tensor) -> torch.Tensor:
        total = torch.add(rows[0], rows[1]) if n > 1 else rows[0].clone()
        for i in range(2, n):
            total.add_(rows[i])
        return total

    def chunk(start: int, end: int) -> None:
        bc = b_flat[start:end].to(device=device, dtype=torch.float32)
        deltas = _workspace(n, end - start, device)
        for i, x in enumerate(xs):
            deltas[i].copy_(x[start:end])  # then subtract: faster than a mixed-dtype sub
        deltas.sub_(bc)
        for i, keeper in enumerate(keepers):
            keeper.keep_(deltas[i], start)
            if keeper.scale != 1.0:
                deltas[i].mul_(keeper.scale)
        deltas.mul_(weight_col)
        mixed = rows_sum(deltas)
        if consensus:
            # elected sign: +1 where the summed weighted deltas are >= 0
            sign = torch.copysign(one, mixed)
            agreeing = deltas.mul_(sign).relu_()  # |delta| where the sign agrees, else 0
            mixed = rows_sum(agreeing)
            mixed.mul_(sign)
            if normalize:
                # sign(agreeing) * w is exactly w or 0: summing those is exact in any order
                divisor = rows_sum(agreeing.sign_().mul_(weight_col))
                if floor_divisor:
                    divisor.clamp_(min=1e-30)
                else:
                    divisor.masked_fill_(divisor == 0, 1.0)
                mixed.div_(divisor)
        elif normalize:
            mixed.div_(plain_divisor)
        if lambda_ != 1:
            mixed.mul_(lambda_)
        out[start:end].copy_(mixed.add_(bc))  # = bc + mixed rounded once; faster than mixed dtypes

    _map_chunks(
        chunk,
        numel,
        parallel=all(k.stateless for k in keepers),
        release=release,
        size=ELEMENTWISE_CHUNK,
    )
    return out.view(base.shape)


class TaskArithmeticFamily(MergeMethod):
    """mergekit's GeneralizedTaskArithmeticMerge: set ``name`` and the class attributes."""

    sparsification: str | None = None
    consensus = False
    default_normalize = False
    default_rescale = False
    extra_per_model: dict = {}

    def __init_subclass__(cls, **kwargs) -> None:
        if "shared" not in cls.__dict__:
            cls.shared = {
                "int8_mask": False,
                "normalize": cls.default_normalize,
                "rescale": cls.default_rescale,
                "lambda": 1.0,
            }
        if "per_model" not in cls.__dict__:
            cls.per_model = {"weight": REQUIRED, "density": 1.0, **cls.extra_per_model}
        super().__init_subclass__(**kwargs)

    def keepers(self, job: TensorJob, base: torch.Tensor, others: Sequence[torch.Tensor]):
        """One Keeper per non-base input (the default: ``generalized_task_arithmetic``'s)."""
        densities = [i.parameters["density"] for i in job.others]
        return make_keepers(
            base.reshape(-1),
            [x.reshape(-1) for x in others],
            densities=densities,
            sparsification=self.sparsification,
            generators=[job.generator(i.index) for i in job.others]
            if self.sparsification == "random"
            else None,
            device=job.device,
            release=job.release,
        )

    def merge(self, job: TensorJob) -> torch.Tensor:
        others = [i.tensor for i in job.others]
        return merge_deltas(
            job.base,
            others,
            self.keepers(job, job.base, others),
            weights=[i.parameters["weight"] for i in job.others],
            consensus=self.consensus,
            normalize=job.shared["normalize"],
            rescale=job.shared["rescale"],
            lambda_=job.shared["lambda"],
            device=job.device,
            out_dtype=job.out_dtype,
            out=job.out,
            release=job.release,
        )


class TaskArithmetic(TaskArithmeticFamily):
    name = "task_arithmetic"


class Ties(TaskArithmeticFamily):
    name = "ties"
    sparsification = "magnitude"
    consensus = True
    default_normalize = True


class DareTies(TaskArithmeticFamily):
    name = "dare_ties"
    sparsification = "random"
    consensus = True
    default_rescale = True


class DareLinear(TaskArithmeticFamily):
    name = "dare_linear"
    sparsification = "random"
    default_rescale = True
