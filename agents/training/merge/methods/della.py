"""DELLA (Deep et al., 2024, "DELLA-Merging"), as mergekit 0.1.5's ``della`` and
``della_linear``: DARE's random drop with a keep probability that grows with
the entry's magnitude rank in its row, then TIES' sign election (``della``)
or a plain weighted sum (``della_linear``).

Per row (a 1-D tensor is one row), entries ranked by |delta| get keep
probability ``density - epsilon + 2 * epsilon * (rank - 1) / (cols - 1)``;
with ``rescale`` (the default) the kept deltas are scaled so their L1 norm
matches the full delta's, as mergekit does (not the paper's 1/p).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ..errors import MergeError
from .base import TensorJob
from .task_arithmetic import TaskArithmeticFamily, _DropAll, _KeepAll, _RandomKeeper


class _RankKeeper(_RandomKeeper):
    """Keeps an entry with a probability set by its |delta| rank within its row.

    Ranks need whole rows, so each chunk recomputes the rows it touches
    (at most two partial rows more than the chunk itself).
    """

    def __init__(
        self,
        x: torch.Tensor,
        base: torch.Tensor,
        cols: int,
        density: float,
        epsilon: float,
        generator: torch.Generator,
    ) -> None:
        super().__init__(density, generator)
        self.x, self.base, self.cols, self.epsilon = x, base, cols, epsilon

    def probability(self, delta: torch.Tensor, start: int) -> torch.Tensor:
        cols = self.cols
        first, last = start // cols, (start + delta.numel() - 1) // cols + 1
        rows = slice(first * cols, last * cols)
        b = self.base[rows].to(device=delta.device, dtype=torch.float32)
        magnitude = torch.sub(self.x[rows].to(delta.device), b).abs_().view(-1, cols)
        order = torch.argsort(magnitude, dim=1, stable=True)
        ranks = torch.empty_like(magnitude)
        positions = torch.arange(cols, device=delta.device, dtype=torch.float32)
        ranks.scatter_(1, order, positions.expand_as(magnitude))  # rank - 1, in 0..cols-1
        probs = ranks.mul_(2 * self.epsilon / max(cols - 1, 1)).add_(self.density - self.epsilon)
        offset = start - first * cols
        return probs.view(-1)[offset : offset + delta.numel()]


class Della(TaskArithmeticFamily):
    name = "della"
    consensus = True
    default_normalize = True
    default_rescale = True
    extra_per_model = {"epsilon": 0.15}

    def check_values(
        self,
        config,
        name: str,
        shared: Mapping[str, Any],
        per_model: Sequence[Mapping[str, Any]],
    ) -> None:
        super().check_values(config, name, shared, per_model)
        for entry, params in zip(config.inputs, per_model, strict=True):
            density, epsilon = params.get("density"), params.get("epsilon")
            if density is None or not 0 < density < 1:
                continue
            if not (density - epsilon > 0 and density + epsilon < 1):
                raise MergeError(
                    f"{self.name}: density +/- epsilon must stay inside (0, 1) for "
                    f"{entry.path} at {name}, got density {density}, epsilon {epsilon}"
                )

    def keepers(self, job: TensorJob, base: torch.Tensor, others: Sequence[torch.Tensor]):
        shape = base.shape
        cols = shape[-1] if len(shape) == 1 else base.numel() // max(shape[0], 1)
        b_flat = base.reshape(-1)
        keepers = []
        for entry, x in zip(job.others, others, strict=True):
            density = entry.parameters["density"]
            if density >= 1 or base.numel() == 0:
                keepers.append(_KeepAll())
            elif density <= 0:
                keepers.append(_DropAll())
            else:
                keepers.append(
                    _RankKeeper(
                        x.reshape(-1),
                        b_flat,
                        cols,
                        density,
                        entry.parameters["epsilon"],
                        job.generator(entry.index),
                    )
                )
        return keepers


class DellaLinear(Della):
    name = "della_linear"
    consensus = False
    default_normalize = False
