"""The streaming merge driver: check everything, then merge one tensor at a time.

``merge_check`` opens and validates every input before any output exists;
``merge_run`` then maps the inputs, merges tensor by tensor (each read as a
zero-copy view of the memory-mapped shard and released once written), and
writes shards as it goes into a hidden sibling directory that is renamed to
the output directory only when complete. Any failure, Ctrl-C or a raised
cancel flag removes the partial directory.
"""

from __future__ import annotations

import contextlib
import json
import mmap
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from .config import (
    DTYPE_NAMES,
    REQUIRED,
    MergeConfig,
    ModelEntry,
    gradient_t,
    model_parameters,
    shared_parameters,
)
from .errors import MergeCancelled, MergeError
from .methods.base import Input, TensorJob, layer_index, rng_for
from .safetensors_io import FLOAT_DTYPES, ModelDir, OutputTensor, ShardedWriter

DEFAULT_SHARD_SIZE = 5 * 1000**3
_VOCAB_MARKERS = ("embed_tokens", "lm_head", "wte", "embed_out", "word_embeddings")
_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "chat_template.jinja",
    "generation_config.json",
)


@dataclass(frozen=True)
class MergeProgress:
    tensors_done: int
    tensors_total: int
    bytes_done: int
    bytes_total: int
    name: str


@dataclass(frozen=True)
class MergeResult:
    output_dir: Path
    tensors: int
    bytes_written: int
    seconds: float


@dataclass
class MergePlan:
    """Everything validated by ``merge_check`` that ``merge_run`` needs."""

    config: MergeConfig
    output_dir: Path
    device: torch.device
    models: dict[Path, ModelDir]
    base: ModelDir
    outputs: list[OutputTensor]
    # name -> (shared parameters, per-input parameters in config.inputs order)
    parameters: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]]
    # what the method's prepare() returned (layer_swap: tensor -> source model)
    state: Any = None
    vocab_rows: dict[str, int] = field(default_factory=dict)

    def close(self) -> None:
        for model in self.models.values():
            model.close()


class _ResultBuffer:
    """One buffer, as large as the largest float output, that every result on the CPU
    is computed into: the writer copies each result out before the next tensor starts.

    A fresh tensor-sized allocation per tensor costs a page fault and the zeroing
    of every 4 KiB page (about 100,000 faults per 0.4 GB of output); this buffer
    is faulted in once, in huge pages where the kernel allows it. The largest
    tensor needed that much memory anyway, so the peak does not grow.
    """

    def __init__(self, outputs: list[OutputTensor]) -> None:
        sizes = [o.nbytes for o in outputs if o.dtype in FLOAT_DTYPES]
        self._map = mmap.mmap(-1, max(sizes)) if sizes and max(sizes) > 0 else None
        if self._map is not None and hasattr(mmap, "MADV_HUGEPAGE"):
            with contextlib.suppress(OSError):
                self._map.madvise(mmap.MADV_HUGEPAGE)
        self._bytes = torch.frombuffer(self._map, dtype=torch.uint8) if self._map else None

    def take(self, out: OutputTensor) -> torch.Tensor | None:
        """The flat result tensor for ``out`` (valid until the next ``take``)."""
        if self._bytes is None or out.dtype not in FLOAT_DTYPES or out.nbytes == 0:
            return None
        return self._bytes[: out.nbytes].view(out.dtype)

    def close(self) -> None:
        self._bytes = None
        if self._map is not None:
            # a result view may still exist; then the map goes when it is collected
            with contextlib.suppress(BufferError):
                self._map.close()


def _device(name: str) -> torch.device:
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda":
        if not torch.cuda.is_available():
            raise MergeError("--device cuda was asked for but CUDA is not available")
        return torch.device("cuda")
    raise MergeError(f"unknown device {name!r} (use cpu or cuda)")


def _is_vocab_tensor(name: str) -> bool:
    return any(marker in name for marker in _VOCAB_MARKERS)


def _existing_ancestor(path: Path) -> Path:
    path = path.absolute()
    while not path.exists():
        path = path.parent
    return path


def _num_layers(base: ModelDir) -> int:
    n = base.config.get("num_hidden_layers")
    if isinstance(n, int) and n > 0:
        return n
    layers = [i for i in map(layer_index, base.names) if i is not None]
    return max(layers) + 1 if layers else 1


def _check_models(
    config: MergeConfig, models: dict[Path, ModelDir], ref: ModelDir
) -> dict[str, int]:
    """Same architecture, tensor names and shapes as the reference model."""
    arch = ref.config.get("architectures")
    for path, model in models.items():
        if model is ref:
            continue
        if model.config.get("architectures") != arch:
            raise MergeError(
                f"architectures differ: {ref.path} is {arch}, "
                f"{path} is {model.config.get('architectures')}"
            )
    ref_names = ref.names
    ref_set = set(ref_names)
    vocab_rows: dict[str, int] = {}
    for path, model in models.items():
        if model is ref:
            continue
        names = set(model.names)
        missing = next((n for n in ref_names if n not in names), None)
        if missing is not None:
            raise MergeError(f"tensor names differ: {missing} is in {ref.path} but not in {path}")
        extra = next((n for n in model.names if n not in ref_set), None)
        if extra is not None:
            raise MergeError(f"tensor names differ: {extra} is in {path} but not in {ref.path}")
        for name in ref_names:
            want, got = ref.info(name).shape, model.info(name).shape
            if want == got:
                continue
            if _is_vocab_tensor(name) and len(want) == len(got) and want[1:] == got[1:]:
                if not config.allow_vocab_mismatch:
                    raise MergeError(
                        f"vocab size mismatch on {name}: {ref.path} has {want[0]} rows, "
                        f"{path} has {got[0]} (set allow_vocab_mismatch: true to merge "
                        f"the first {want[0]} rows)"
                    )
                if got[0] < want[0]:
                    raise MergeError(
                        f"vocab size mismatch on {name}: {path} has {got[0]} rows, fewer than "
                        f"the {want[0]} of {ref.path}; cannot merge"
                    )
                vocab_rows[name] = want[0]
                continue
            raise MergeError(f"shapes differ for {name}: {ref.path} has {want}, {path} has {got}")
    return vocab_rows


def merge_check(
    *,
    config: MergeConfig,
    output_dir: Path,
    device: str = "cpu",
    shard_size: int = DEFAULT_SHARD_SIZE,
) -> MergePlan:
    """Validate a merge before any work; return the plan or raise MergeError.

    Checks: device, output directory absent or empty, every input directory and
    file present, same architecture and tensor names (names the first that
    differs), same shapes, vocab sizes (unless allow_vocab_mismatch), every
    parameter resolvable for every tensor, and enough free disk for the output.
    """
    dev = _device(device)
    output_dir = Path(output_dir)
    if output_dir.exists() and (not output_dir.is_dir() or any(output_dir.iterdir())):
        raise MergeError(f"output directory {output_dir} already exists and is not empty")
    if shard_size <= 0:
        raise MergeError("shard size must be positive")

    models: dict[Path, ModelDir] = {}
    try:
        for entry in config.inputs:
            models[entry.path] = ModelDir(entry.path)
        if config.tokenizer_source is not None and not config.tokenizer_source.is_dir():
            raise MergeError(f"tokenizer_source directory not found: {config.tokenizer_source}")
        base = models[config.base_model] if config.base_model else models[config.inputs[0].path]
        vocab_rows = _check_models(config, models, base)
        num_layers = _num_layers(base)
        if config.slice_layers is not None and config.slice_layers != num_layers:
            raise MergeError(
                f"slices: layer_range ends at {config.slice_layers} but the models have "
                f"{num_layers} layers (partial ranges are not supported)"
            )

        out_dtype = config.out_dtype or config.dtype
        outputs, parameters = [], {}
        for name in base.names:
            info = base.info(name)
            floating = info.dtype in FLOAT_DTYPES
            dtype = (out_dtype or info.dtype) if floating else info.dtype
            outputs.append(OutputTensor(name=name, dtype=dtype, shape=info.shape))
            if not floating or config.method.raw_parameters:
                continue
            t = gradient_t(name=name, num_layers=num_layers)
            shared = shared_parameters(config, name=name, t=t)
            per_model = [
                {}
                if (entry.path == config.base_model and not config.method.base_is_input)
                else model_parameters(config, entry, name=name, t=t)
                for entry in config.inputs
            ]
            config.method.check_values(config, name, shared, per_model)
            parameters[name] = (shared, per_model)
        state = config.method.prepare(config, base, num_layers)

        need = sum(o.nbytes for o in outputs) + (1 << 20)
        where = _existing_ancestor(output_dir.parent)
        free = shutil.disk_usage(where).free
        if free < need:
            raise MergeError(
                f"not enough free disk space for the output: need {need / 1e9:.2f} GB, "
                f"{free / 1e9:.2f} GB free at {where}"
            )
    except BaseException:
        for model in models.values():
            model.close()
        raise
    return MergePlan(
        config=config,
        output_dir=output_dir,
        device=dev,
        models=models,
        base=base,
        outputs=outputs,
        parameters=parameters,
        state=state,
        vocab_rows=vocab_rows,
    )


def _merge_tensor(
    plan: MergePlan, out: OutputTensor, seed: int, buffer: _ResultBuffer | None = None
) -> torch.Tensor:
    config = plan.config
    name = out.name
    rows = plan.vocab_rows.get(name)

    def load(path: Path) -> torch.Tensor:
        x = plan.models[path].tensor(name)
        return x[:rows] if rows is not None else x

    def release(start: int, end: int) -> None:
        for model in plan.models.values():
            model.release(name, start, end)

    base_x = load(plan.base.path)
    if base_x.dtype not in FLOAT_DTYPES:
        return base_x.clone()
    shared, per_model = plan.parameters.get(name, ({}, [{} for _ in config.inputs]))
    inputs = tuple(
        Input(index=i, path=e.path, parameters=p, tensor=load(e.path))
        for i, (e, p) in enumerate(zip(config.inputs, per_model, strict=True))
    )
    job = TensorJob(
        name=name,
        base=base_x,
        base_path=plan.base.path,
        inputs=inputs,
        others=tuple(i for i in inputs if i.path != config.base_model),
        shared=shared,
        device=plan.device,
        out_dtype=out.dtype,
        release=release,
        seed=seed,
        state=plan.state,
        load=load,
        out=buffer.take(out) if buffer is not None and plan.device.type == "cpu" else None,
    )
    return config.method.merge(job)


def _write_metadata(plan: MergePlan, directory: Path, *, seed: int, device: str) -> None:
    config = dict(plan.base.config)
    out_dtypes = {o.dtype for o in plan.outputs if o.dtype in FLOAT_DTYPES}
    if len(out_dtypes) == 1:
        config["torch_dtype"] = DTYPE_NAMES[out_dtypes.pop()]
        if "dtype" in config:  # newer transformers spell it this way
            config["dtype"] = config["torch_dtype"]
    (directory / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    tokenizer_dir = plan.config.tokenizer_source or plan.base.path
    for fname in _TOKENIZER_FILES:
        src = tokenizer_dir / fname
        if src.is_file():
            shutil.copyfile(src, directory / fname)
    record = dict(plan.config.source)
    method = plan.config.method
    record["tooltrail"] = {
        "engine": "agents.training.merge",
        "seed": seed,
        "device": device,
        "defaults": {k: v for k, v in method.shared.items() if v is not REQUIRED},
        "output_dtypes": sorted({DTYPE_NAMES.get(o.dtype, str(o.dtype)) for o in plan.outputs}),
        "tensors": len(plan.outputs),
    }
    (directory / "merge_config.yml").write_text(yaml.safe_dump(record, sort_keys=False))


def merge_run(
    *,
    config: MergeConfig,
    output_dir: Path,
    device: str = "cpu",
    seed: int = 0,
    shard_size: int = DEFAULT_SHARD_SIZE,
    progress: Callable[[MergeProgress], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> MergeResult:
    """Merge the models of ``config`` into ``output_dir``.

    Preconditions (all checked by ``merge_check`` first, MergeError otherwise):
    see that function. ``cancel`` is polled before every tensor; when it
    returns True, or on Ctrl-C, the merge stops and MergeCancelled is raised
    after the partial output has been removed. Same config and seed give
    bit-identical files.
    """
    started = time.perf_counter()
    output_dir = Path(output_dir)
    plan = merge_check(config=config, output_dir=output_dir, device=device, shard_size=shard_size)
    parent = output_dir.absolute().parent
    partial: Path | None = None
    writer: ShardedWriter | None = None
    buffer = _ResultBuffer(plan.outputs)
    # the methods spread chunks over their own threads; see methods.streaming.WORKERS.
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        parent.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.partial-", dir=parent))
        writer = ShardedWriter(partial, plan.outputs, shard_size=shard_size)
        done_bytes = 0
        total = len(plan.outputs)
        for i, out in enumerate(plan.outputs):
            if cancel is not None and cancel():
                raise MergeCancelled("merge cancelled; partial output removed")
            merged = _merge_tensor(plan, out, seed, buffer)
            writer.write(out.name, merged)
            del merged
            for model in plan.models.values():
                model.release(out.name)
            done_bytes += out.nbytes
            if progress is not None:
                progress(MergeProgress(i + 1, total, done_bytes, writer.total_size, out.name))
        writer.finish()
        _write_metadata(plan, partial, seed=seed, device=device)
        if output_dir.exists():
            output_dir.rmdir()
        os.rename(partial, output_dir)
        partial = None
    except KeyboardInterrupt as exc:
        raise MergeCancelled("merge interrupted; partial output removed") from exc
    finally:
        torch.set_num_threads(torch_threads)
        if writer is not None:
            writer.abort()
        if partial is not None:
            shutil.rmtree(partial, ignore_errors=True)
        buffer.close()
        plan.close()
    return MergeResult(
        output_dir=output_dir,
        tensors=len(plan.outputs),
        bytes_written=done_bytes,
        seconds=time.perf_counter() - started,
    )


__all__ = [
    "DEFAULT_SHARD_SIZE",
    "MergePlan",
    "MergeProgress",
    "MergeResult",
    "ModelEntry",
    "merge_check",
    "merge_run",
    "rng_for",
]
