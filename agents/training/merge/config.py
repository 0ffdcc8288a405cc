"""Merge configuration: mergekit's YAML format for the methods we support.

A mergekit config runs here unchanged when its method is supported. Keys that
mergekit knows but we do not implement, and keys nobody knows, are errors that
name them: a silently ignored key would give a different model than asked for.

Parameter values follow mergekit's rules (``evaluate_setting``):

* a scalar applies to every tensor;
* a list of numbers is a gradient over the layers, interpolated at
  ``t = layer / (num_layers - 1)`` (tensors outside the layers use ``t = 0``);
* ``{filter: ..., value: ...}`` entries (or a list of them) apply when
  ``filter`` is a substring of the tensor name; the first match wins and a
  missing filter (or ``"*"``) matches everything.

A per-model parameter is looked up in the model's ``parameters`` first and
then in the top-level ``parameters``; a global parameter only at top level.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from .errors import MergeError
from .methods.base import REQUIRED, MergeMethod, layer_index
from .registry import METHODS

_DTYPES = {
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "float32": torch.float32,
    "fp32": torch.float32,
    "float": torch.float32,
}

DTYPE_NAMES = {torch.bfloat16: "bfloat16", torch.float16: "float16", torch.float32: "float32"}

_TOP_KEYS = {
    "merge_method",
    "base_model",
    "models",
    "slices",
    "parameters",
    "dtype",
    "out_dtype",
    "tokenizer_source",
    # ours
    "allow_vocab_mismatch",
}
# mergekit keys we deliberately do not implement: name them precisely.
_UNSUPPORTED_TOP_KEYS = {"modules", "tokenizer", "chat_template"}


# a method's spec is its MergeMethod class (kept under its old name too)
MethodSpec = MergeMethod


@dataclass(frozen=True)
class ModelEntry:
    """One input model and its own parameters, as written in the config."""

    path: Path
    parameters: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MergeConfig:
    """A validated merge configuration (files are checked later, by the driver)."""

    method: MergeMethod
    base_model: Path | None
    models: tuple[ModelEntry, ...]
    parameters: Mapping[str, Any]
    dtype: torch.dtype | None
    out_dtype: torch.dtype | None
    tokenizer_source: Path | None
    allow_vocab_mismatch: bool
    source: Mapping[str, Any]
    # layer_range end of a one-slice config; must equal the models' layer count.
    slice_layers: int | None = None

    @property
    def inputs(self) -> tuple[ModelEntry, ...]:
        """Every model read, base included (appended last when not listed, as mergekit does)."""
        entries = list(self.models)
        if self.base_model is not None and all(e.path != self.base_model for e in entries):
            entries.append(ModelEntry(path=self.base_model))
        return tuple(entries)

    @property
    def non_base(self) -> tuple[ModelEntry, ...]:
        return tuple(e for e in self.inputs if e.path != self.base_model)


def config_load(*, path: Path) -> MergeConfig:
    """Read and validate a mergekit-style YAML file."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise MergeError(f"cannot read merge config {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise MergeError(f"merge config {path} is not UTF-8 text: {exc.reason}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise MergeError(f"merge config {path} is not valid YAML: {exc}") from exc
    return config_parse(data=data)


def config_parse(*, data: Any) -> MergeConfig:
    """Validate a parsed config mapping; raise MergeError naming the first problem."""
    if not isinstance(data, dict):
        raise MergeError("merge config must be a YAML mapping")
    unsupported = sorted(k for k in data if k in _UNSUPPORTED_TOP_KEYS)
    if unsupported:
        raise MergeError(f"unsupported config key(s): {', '.join(unsupported)}")
    unknown = sorted(str(k) for k in data if k not in _TOP_KEYS)
    if unknown:
        raise MergeError(f"unknown config key(s): {', '.join(unknown)}")

    method_name = data.get("merge_method")
    if method_name is None:
        raise MergeError("merge config needs merge_method")
    if method_name not in METHODS:
        raise MergeError(
            f"unsupported merge_method {method_name!r} (supported: {', '.join(sorted(METHODS))})"
        )
    method = METHODS[method_name]

    base_model = _path(data["base_model"], "base_model") if data.get("base_model") else None
    if "models" in data and "slices" in data:
        raise MergeError("give either models or slices, not both")
    slice_layers = None
    if "slices" in data:
        models, slice_layers = _models_from_slices(data["slices"])
    elif "models" in data:
        models = _models(data["models"])
    else:
        raise MergeError("merge config needs models (or slices)")

    parameters = data.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise MergeError("top-level parameters must be a mapping")

    config = MergeConfig(
        method=method,
        base_model=base_model,
        models=models,
        parameters=parameters,
        dtype=_dtype(data.get("dtype"), "dtype"),
        out_dtype=_dtype(data.get("out_dtype"), "out_dtype"),
        tokenizer_source=_tokenizer_source(data.get("tokenizer_source"), base_model),
        allow_vocab_mismatch=_bool(data.get("allow_vocab_mismatch", False), "allow_vocab_mismatch"),
        source=data,
        slice_layers=slice_layers,
    )
    _check_method(config)
    return config


def _path(value: Any, where: str) -> Path:
    if not isinstance(value, str) or not value:
        raise MergeError(f"{where} must be a model directory path, got {value!r}")
    return Path(value).expanduser()


def _models(raw: Any) -> tuple[ModelEntry, ...]:
    if not isinstance(raw, list) or not raw:
        raise MergeError("models must be a non-empty list")
    entries = []
    for i, item in enumerate(raw):
        if isinstance(item, str):
            item = {"model": item}
        if not isinstance(item, dict):
            raise MergeError(f"models[{i}] must be a mapping with model:")
        extra = sorted(str(k) for k in item if k not in ("model", "parameters"))
        if extra:
            raise MergeError(f"unknown key(s) in models[{i}]: {', '.join(extra)}")
        if "model" not in item:
            raise MergeError(f"models[{i}] needs model:")
        params = item.get("parameters") or {}
        if not isinstance(params, dict):
            raise MergeError(f"models[{i}].parameters must be a mapping")
        entries.append(
            ModelEntry(path=_path(item["model"], f"models[{i}].model"), parameters=params)
        )
    paths = [e.path for e in entries]
    dup = next((p for p in paths if paths.count(p) > 1), None)
    if dup is not None:
        raise MergeError(f"model {dup} is listed twice")
    return tuple(entries)


def _models_from_slices(raw: Any) -> tuple[tuple[ModelEntry, ...], int]:
    """Accept mergekit's one-slice form when every source covers the same full range.

    That is how most SLERP configs are written. Layer stacking (several slices
    or partial ranges) is mergekit's passthrough; here use layer_swap.
    """
    if not isinstance(raw, list) or len(raw) != 1 or not isinstance(raw[0], dict):
        raise MergeError(
            "slices: only a single slice is supported (for layer picking use layer_swap)"
        )
    extra = sorted(str(k) for k in raw[0] if k != "sources")
    if extra:
        raise MergeError(f"unsupported key(s) in slices[0]: {', '.join(extra)}")
    sources = raw[0].get("sources")
    if not isinstance(sources, list) or not sources:
        raise MergeError("slices[0].sources must be a non-empty list")
    items, ranges = [], set()
    for i, src in enumerate(sources):
        if not isinstance(src, dict):
            raise MergeError(f"slices[0].sources[{i}] must be a mapping")
        extra = sorted(str(k) for k in src if k not in ("model", "layer_range", "parameters"))
        if extra:
            raise MergeError(f"unknown key(s) in slices[0].sources[{i}]: {', '.join(extra)}")
        layer_range = src.get("layer_range")
        if (
            not isinstance(layer_range, list)
            or len(layer_range) != 2
            or not all(isinstance(x, int) for x in layer_range)
        ):
            raise MergeError(f"slices[0].sources[{i}].layer_range must be [start, end]")
        ranges.add(tuple(layer_range))
        items.append({k: v for k, v in src.items() if k != "layer_range"})
    if len(ranges) != 1 or next(iter(ranges))[0] != 0:
        raise MergeError(
            "slices: sources must all use the same layer_range starting at 0 "
            "(partial ranges are not supported; use layer_swap)"
        )
    return _models(items), next(iter(ranges))[1]


def _dtype(value: Any, where: str) -> torch.dtype | None:
    if value is None:
        return None
    name = str(value).removeprefix("torch.")
    if name not in _DTYPES:
        raise MergeError(f"{where}: unsupported dtype {value!r} (use bfloat16, float16 or float32)")
    return _DTYPES[name]


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise MergeError(f"{where} must be true or false, got {value!r}")
    return value


def _tokenizer_source(value: Any, base_model: Path | None) -> Path | None:
    if value is None:
        return None
    if value == "base":
        if base_model is None:
            raise MergeError("tokenizer_source: base needs base_model")
        return base_model
    if value == "union":
        raise MergeError("tokenizer_source: union is not supported (use base or a model path)")
    return _path(value, "tokenizer_source")


def _check_method(config: MergeConfig) -> None:
    method = config.method
    if method.base_required and config.base_model is None:
        raise MergeError(f"{method.name} needs base_model")
    if method.exact_models is not None and len(config.inputs) != method.exact_models:
        raise MergeError(
            f"{method.name} merges exactly {method.exact_models} models (base included), "
            f"got {len(config.inputs)}"
        )
    if not method.base_is_input and len(config.non_base) < method.min_non_base:
        if method.min_non_base == 1:
            raise MergeError(f"{method.name} needs at least one model besides base_model")
        raise MergeError(
            f"{method.name} needs at least {method.min_non_base} models besides base_model, "
            f"got {len(config.non_base)}"
        )

    allowed = set(method.shared) | set(method.per_model)
    unknown = sorted(str(k) for k in config.parameters if k not in allowed)
    if unknown:
        raise MergeError(
            f"unknown parameter(s) for {method.name}: {', '.join(unknown)} "
            f"(accepted: {', '.join(sorted(allowed)) or 'none'})"
        )
    for entry in config.inputs:
        for key in entry.parameters:
            if key in method.shared:
                raise MergeError(
                    f"parameter {key!r} of {entry.path} is a global parameter of "
                    f"{method.name}: put it under the top-level parameters"
                )
            if key not in method.per_model:
                raise MergeError(
                    f"unknown parameter {key!r} for model {entry.path} in {method.name} "
                    f"(accepted: {', '.join(sorted(method.per_model)) or 'none'})"
                )
    method.check_config(config)


def gradient_t(*, name: str, num_layers: int) -> float:
    """mergekit's interpolation position: layer / (num_layers - 1); 0 outside layers."""
    layer = layer_index(name)
    if layer is None:
        return 0.0
    return layer / (num_layers - 1) if num_layers > 1 else 1.0


def evaluate_setting(setting: Any, *, name: str, t: float) -> Any:
    """Resolve one parameter value for a tensor (scalar, gradient or filters)."""
    if isinstance(setting, dict):
        setting = [setting]
    if isinstance(setting, (bool, int, float, str)):
        return setting
    if isinstance(setting, list):
        if not setting:
            return None
        if all(isinstance(e, (bool, int, float, str)) for e in setting):
            if not all(isinstance(e, (int, float)) and not isinstance(e, bool) for e in setting):
                return setting[int(t * (len(setting) - 1))]
            scaled = t * (len(setting) - 1)
            i0 = int(scaled)
            i1 = min(len(setting) - 1, i0 + 1)
            frac = scaled - i0
            return (1 - frac) * setting[i0] + frac * setting[i1]
        for cond in setting:
            if not isinstance(cond, dict) or "value" not in cond:
                raise MergeError(f"parameter entry {cond!r} must be a mapping with value:")
            extra = sorted(str(k) for k in cond if k not in ("filter", "value"))
            if extra:
                raise MergeError(f"unknown key(s) in parameter filter entry: {', '.join(extra)}")
            flt = cond.get("filter")
            if flt is None or flt == "*" or (name and str(flt) in name):
                return evaluate_setting(cond["value"], name=name, t=t)
        return None
    raise MergeError(f"unexpected parameter value {setting!r}")


def _typed(method: MergeMethod, key: str, value: Any, where: str) -> Any:
    if method.is_bool(key):
        if not isinstance(value, bool):
            raise MergeError(f"parameter {key} {where} must be true or false, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MergeError(f"parameter {key} {where} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise MergeError(f"parameter {key} {where} must be finite")
    return value


def _resolve(
    method: MergeMethod,
    key: str,
    default: Any,
    scopes: list[Mapping[str, Any]],
    *,
    name: str,
    t: float,
    where: str,
) -> Any:
    for scope in scopes:
        if key in scope:
            value = evaluate_setting(scope[key], name=name, t=t)
            if value is not None:
                return _typed(method, key, value, where)
    if default is REQUIRED:
        raise MergeError(f"missing required parameter {key} {where}")
    return default


def shared_parameters(config: MergeConfig, *, name: str, t: float) -> dict[str, Any]:
    """Global parameters of the method for one tensor."""
    return {
        key: _resolve(
            config.method, key, default, [config.parameters], name=name, t=t, where=f"for {name}"
        )
        for key, default in config.method.shared.items()
    }


def model_parameters(
    config: MergeConfig, entry: ModelEntry, *, name: str, t: float
) -> dict[str, Any]:
    """Per-model parameters for one tensor (model's own settings, then top-level)."""
    return {
        key: _resolve(
            config.method,
            key,
            default,
            [entry.parameters, config.parameters],
            name=name,
            t=t,
            where=f"for {entry.path} at {name}",
        )
        for key, default in config.method.per_model.items()
    }
