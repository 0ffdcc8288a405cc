"""What a merge method is: its spec (parameters, defaults, input rules) and its tensor code.

One subclass of ``MergeMethod`` per method, in one module of this package,
holds everything about it; setting ``name`` registers it (``registry`` imports
every module here). The driver validates configs against the spec, resolves
parameters per tensor, and calls ``merge`` with a ``TensorJob``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from ..errors import MergeError

if TYPE_CHECKING:
    from ..config import MergeConfig
    from ..safetensors_io import ModelDir

REQUIRED = object()

_LAYER_RE = re.compile(r"(?:^|\.)layers\.(\d+)\.")


def layer_index(name: str) -> int | None:
    """The decoder layer a tensor belongs to (``model.layers.N.``), or None."""
    m = _LAYER_RE.search(name)
    return int(m.group(1)) if m else None


Release = Callable[[int, int], None]


def rng_for(*, seed: int, name: str, index: int) -> torch.Generator:
    """A CPU generator that depends only on (seed, tensor, model): chunking- and device-free."""
    digest = hashlib.sha256(f"{seed}\0{name}\0{index}".encode()).digest()
    return torch.Generator(device="cpu").manual_seed(int.from_bytes(digest[:8], "little") >> 1)


@dataclass(frozen=True)
class Input:
    """One input model's tensor, with its resolved per-model parameters."""

    index: int  # position in config.inputs; seeds the random streams
    path: Path
    parameters: Mapping[str, Any]
    tensor: torch.Tensor  # a zero-copy view; never modify it


@dataclass(frozen=True)
class TensorJob:
    """Everything a method needs to merge one float tensor."""

    name: str
    base: torch.Tensor  # base_model's tensor (the first input when there is no base)
    base_path: Path
    inputs: tuple[Input, ...]  # every input in config order, the base included
    others: tuple[Input, ...]  # the inputs other than base_model
    shared: Mapping[str, Any]
    device: torch.device
    out_dtype: torch.dtype
    release: Release  # drop input pages of elements [start, end) once a pass is done
    seed: int
    state: Any  # what the method's ``prepare`` returned
    load: Callable[[Path], torch.Tensor]
    # The driver's reused buffer for the result (numel x out_dtype on device), or None.
    # A method may write its result there instead of allocating: the driver writes
    # each result out before the next tensor, and reusing one buffer saves the
    # page faults and zeroing of a fresh tensor-sized allocation each time.
    out: torch.Tensor | None = None

    def generator(self, index: int) -> torch.Generator:
        return rng_for(seed=self.seed, name=self.name, index=index)


class MergeMethod:
    """A merge method. Subclasses set the spec as class attributes and implement ``merge``.

    Parameters are ``shared`` (top level only) or ``per_model`` (model first,
    then top level), each with its default or ``REQUIRED``. A parameter whose
    default is a bool must be true or false; every other one is a number.
    """

    name: ClassVar[str | None] = None  # set in a concrete method: that registers it
    shared: ClassVar[Mapping[str, Any]] = {}
    per_model: ClassVar[Mapping[str, Any]] = {}
    base_required: ClassVar[bool] = True
    # linear has no base: every input, the base model included, needs a weight.
    base_is_input: ClassVar[bool] = False
    exact_models: ClassVar[int | None] = None  # inputs, base included
    min_non_base: ClassVar[int] = 1
    # layer_swap's list-valued parameters are not gradients: read them raw in ``prepare``.
    raw_parameters: ClassVar[bool] = False

    registered: ClassVar[dict[str, type[MergeMethod]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("name")
        if name is None:
            return
        if name in MergeMethod.registered:
            raise TypeError(f"merge method {name!r} is defined twice")
        MergeMethod.registered[name] = cls

    def is_bool(self, key: str) -> bool:
        default = self.shared.get(key, self.per_model.get(key))
        return isinstance(default, bool)

    def check_config(self, config: MergeConfig) -> None:
        """Checks of the whole config beyond the spec (raise MergeError)."""

    def prepare(self, config: MergeConfig, base: ModelDir, num_layers: int) -> Any:
        """Work done once in ``merge_check``; the result reaches ``merge`` as ``job.state``."""
        return None

    def check_values(
        self,
        config: MergeConfig,
        name: str,
        shared: Mapping[str, Any],
        per_model: Sequence[Mapping[str, Any]],
    ) -> None:
        """Check one tensor's resolved parameters (``per_model`` in config.inputs order)."""
        for entry, params in zip(config.inputs, per_model, strict=True):
            density = params.get("density")
            if density is not None and density < 0:
                raise MergeError(f"density for {entry.path} at {name} must be >= 0, got {density}")

    def merge(self, job: TensorJob) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<merge method {self.name}>"
