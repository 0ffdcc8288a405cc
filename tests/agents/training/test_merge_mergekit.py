"""Our output against mergekit's (the reference) for the same YAML on tiny models.

mergekit runs from its own venv (.venv-mergekit, made by scripts/mergekit_venv.sh),
as a subprocess, all configs at once to keep the suite fast. fp32 inputs with
``dtype: float32`` compare within 1e-6 (in practice bit-exact); DARE's random
drop cannot use mergekit's RNG stream, so DARE-TIES compares statistics.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from agents.training.merge import config_load, merge_run

from .conftest import models_make, output_load

REPO = Path(__file__).resolve().parents[3]
MERGEKIT = REPO / ".venv-mergekit" / "bin" / "mergekit-yaml"


def configs(models, models_bf16) -> dict[str, dict]:
    base, fts = str(models.base), [str(p) for p in models.fts]
    weights, densities = [0.3, 0.3, 0.4], [0.5, 0.4, 0.6]

    def gta(method, **parameters):
        cfg = {
            "merge_method": method,
            "base_model": base,
            "models": [
                {"model": m, "parameters": {"weight": w, "density": d}}
                for m, w, d in zip(fts, weights, densities, strict=True)
            ],
            "dtype": "float32",
        }
        if parameters:
            cfg["parameters"] = parameters
        return cfg

    def linear(paths, dtype):
        return {
            "merge_method": "linear",
            "models": [
                {"model": str(m), "parameters": {"weight": w}}
                for m, w in zip(paths, [1.0, 0.5, 2.0], strict=True)
            ],
            "dtype": dtype,
        }

    return {
        "linear": linear(fts, "float32"),
        # bf16 inputs: mergekit and we both compute in fp32 and round once
        "linear_bf16": linear(models_bf16.fts, "bfloat16"),
        "task_arithmetic": gta("task_arithmetic", **{"lambda": 0.9}),
        "ties": gta("ties"),
        "dare_ties": gta("dare_ties"),
        "della": gta("della"),
        "model_stock": {
            "merge_method": "model_stock",
            "base_model": base,
            "models": [{"model": m} for m in fts],
            "dtype": "float32",
        },
        "model_stock_filter_wise": {
            "merge_method": "model_stock",
            "base_model": base,
            "models": [{"model": m} for m in fts],
            "parameters": {"filter_wise": True},
            "dtype": "float32",
        },
        "slerp": {
            "slices": [
                {
                    "sources": [
                        {"model": base, "layer_range": [0, 3]},
                        {"model": fts[0], "layer_range": [0, 3]},
                    ]
                }
            ],
            "merge_method": "slerp",
            "base_model": base,
            "parameters": {"t": [{"filter": "mlp", "value": [0.1, 0.9]}, {"value": 0.6}]},
            "dtype": "float32",
        },
    }


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> dict[str, tuple[dict, dict]]:
    """{name: (ours, mergekit's)} for every config, mergekit runs in parallel."""
    if not MERGEKIT.exists():
        pytest.fail(
            f"mergekit reference missing ({MERGEKIT}): run scripts/mergekit_venv.sh", pytrace=False
        )
    root = tmp_path_factory.mktemp("vs-mergekit")
    models = models_make(root)
    models_bf16 = models_make(root / "bf16", dtype=torch.bfloat16)
    procs = {}
    for name, cfg in configs(models, models_bf16).items():
        path = root / f"{name}.yml"
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        cmd = [
            str(MERGEKIT),
            str(path),
            str(root / f"mk-{name}"),
            "--no-copy-tokenizer",
            "--quiet",
            "--random-seed",
            "1",
        ]
        procs[name] = (
            path,
            subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT),
        )
    result = {}
    for name, (path, proc) in procs.items():
        ours = merge_run(config=config_load(path=path), output_dir=root / f"ours-{name}", seed=1)
        log = proc.communicate(
            timeout=900
        )  # a safety net: 8 engineers share 2 cores[0].decode(errors="replace")
        assert proc.returncode == 0, f"mergekit failed on {name}:\n{log[-2000:]}"
        theirs = {}
        for shard in sorted((root / f"mk-{name}").glob("*.safetensors")):
            theirs.update(load_file(shard))
        result[name] = (output_load(ours.output_dir), theirs)
    return result


def assert_same(ours: dict, theirs: dict, atol: float) -> None:
    assert set(ours) == set(theirs)
    for name in ours:
        assert ours[name].dtype == theirs[name].dtype, name
        torch.testing.assert_close(ours[name], theirs[name], atol=atol, rtol=0, msg=name)


@pytest.mark.parametrize(
    "name",
    ["linear", "task_arithmetic", "ties", "slerp", "model_stock", "model_stock_filter_wise"],
)
def test_output_matches_mergekit_on_same_yaml(pairs, name):
    ours, theirs = pairs[name]
    assert_same(ours, theirs, atol=1e-6)


def test_linear_in_bf16_is_bit_identical_to_mergekit(pairs):
    ours, theirs = pairs["linear_bf16"]
    assert_same(ours, theirs, atol=0)


@pytest.mark.parametrize("name", ["dare_ties", "della"])
def test_random_drop_statistics_match_mergekit(pairs, tmp_path, name):
    """Same drop rate and same L1 mass of the merged task vector, within sampling noise."""
    ours, theirs = pairs[name]
    base = models_make(tmp_path).tensors[tmp_path / "base"]
    stats = {}
    for label, out in (("ours", ours), ("mergekit", theirs)):
        changed = sum(int((out[n] != base[n]).sum()) for n in base)
        mass = sum(float((out[n] - base[n]).abs().sum()) for n in base)
        stats[label] = (changed / sum(t.numel() for t in base.values()), mass)
    (frac_ours, mass_ours), (frac_theirs, mass_theirs) = stats["ours"], stats["mergekit"]
    assert abs(frac_ours - frac_theirs) < 0.03, stats
    assert abs(mass_ours / mass_theirs - 1) < 0.05, stats
    assert set(ours) == set(theirs)
