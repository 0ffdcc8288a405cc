"""The driver: checks before any work, output layout, determinism, cancel."""

from __future__ import annotations

import json
import shutil
from collections import namedtuple
from pathlib import Path

import pytest
import torch
import yaml

from agents.training.merge import MergeCancelled, MergeError, config_load, config_parse, merge_run
from agents.training.merge import driver as driver_module
from agents.training.merge.synthetic import synthetic_model_write, synthetic_tensors

from .conftest import TINY, merge, output_load


def ties_config(models, **extra) -> dict:
    return {
        "merge_method": "ties",
        "base_model": str(models.base),
        "models": [
            {"model": str(p), "parameters": {"weight": 0.5, "density": 0.5}} for p in models.fts
        ],
        **extra,
    }


def dare_config(models) -> dict:
    cfg = ties_config(models, dtype="bfloat16")
    cfg["merge_method"] = "dare_ties"
    return cfg


def run(models, data: dict, out: str = "out", **kwargs):
    return merge_run(
        config=config_load(path=models.config(data)), output_dir=models.root / out, **kwargs
    )


def leftovers(models) -> list[str]:
    """Anything a merge left in the directory that holds the output."""
    inputs = {"base", "ft1", "ft2", "ft3", "merge.yml"}
    return sorted(p.name for p in models.root.iterdir() if p.name not in inputs)


def test_output_is_sharded_with_index_config_tokenizer_and_record(models):
    tokenizer_dir = models.root / "tok"
    tokenizer_dir.mkdir()
    (tokenizer_dir / "tokenizer.json").write_text('{"from": "tok"}')
    cfg = ties_config(models, dtype="bfloat16", tokenizer_source=str(tokenizer_dir))
    result = run(models, cfg, shard_size=2000)
    out = result.output_dir
    index = json.loads((out / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 1 and all((out / s).is_file() for s in shards)
    merged = output_load(out)
    assert set(merged) == set(models.tensors[models.base])
    assert {t.dtype for t in merged.values()} == {torch.bfloat16}
    assert index["metadata"]["total_size"] == sum(t.numel() * 2 for t in merged.values())
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and config["torch_dtype"] == "bfloat16"
    assert (out / "tokenizer.json").read_text() == '{"from": "tok"}'
    record = yaml.safe_load((out / "merge_config.yml").read_text())
    assert record["merge_method"] == "ties" and record["tooltrail"]["seed"] == 0


def test_same_config_and_seed_give_bit_identical_files(models):
    first = run(models, dare_config(models), out="a", seed=5).output_dir
    second = run(models, dare_config(models), out="b", seed=5).output_dir
    other_seed = run(models, dare_config(models), out="c", seed=6).output_dir
    names = sorted(p.name for p in first.iterdir())
    assert names == sorted(p.name for p in second.iterdir())
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    a, c = output_load(first), output_load(other_seed)
    assert any(not torch.equal(a[n], c[n]) for n in a)  # the seed does drive DARE's drop


def test_output_dtype_defaults_to_the_inputs_and_out_dtype_wins(models):
    assert {t.dtype for t in merge(models, ties_config(models), out="a").values()} == {
        torch.float32
    }
    cfg = ties_config(models, dtype="bfloat16", out_dtype="float16")
    assert {t.dtype for t in merge(models, cfg, out="b").values()} == {torch.float16}


def test_cancel_flag_stops_and_leaves_nothing_behind(models):
    seen = []

    def cancel() -> bool:
        seen.append(1)
        return len(seen) > 3

    with pytest.raises(MergeCancelled):
        run(models, ties_config(models), cancel=cancel)
    assert len(seen) == 4  # stopped at the next tensor boundary
    assert leftovers(models) == []


def test_ctrl_c_removes_the_half_written_output(models):
    def progress(p):
        if p.tensors_done == 5:
            raise KeyboardInterrupt

    with pytest.raises(MergeCancelled):
        run(models, ties_config(models), progress=progress, shard_size=1000)
    assert leftovers(models) == []


def test_it_refuses_a_non_empty_output_directory(models):
    (models.root / "out").mkdir()
    (models.root / "out" / "keep.txt").write_text("mine")
    with pytest.raises(MergeError, match="already exists and is not empty"):
        run(models, ties_config(models))
    assert (models.root / "out" / "keep.txt").read_text() == "mine"


def test_it_names_a_missing_model_directory(models):
    cfg = ties_config(models)
    cfg["models"][1]["model"] = str(models.root / "nope")
    with pytest.raises(MergeError, match="model directory not found: .*nope"):
        run(models, cfg)


def test_it_names_a_missing_shard_listed_in_the_index(models):
    index = json.loads((models.base / "model.safetensors.index.json").read_text())
    shard = sorted(set(index["weight_map"].values()))[1]
    (models.base / shard).unlink()
    with pytest.raises(MergeError, match=f"missing file: .*{shard}"):
        run(models, ties_config(models))
    assert leftovers(models) == []


def test_it_names_a_missing_config_json(models):
    (models.fts[0] / "config.json").unlink()
    with pytest.raises(MergeError, match="missing file: .*ft1/config.json"):
        run(models, ties_config(models))


def test_it_refuses_different_architectures(models):
    path = models.fts[2] / "config.json"
    path.write_text(
        json.dumps({**json.loads(path.read_text()), "architectures": ["MistralForCausalLM"]})
    )
    with pytest.raises(MergeError, match="architectures differ: .*MistralForCausalLM"):
        run(models, ties_config(models))


def rewrite(models, path: Path, change) -> None:
    tensors = dict(models.tensors[path])
    change(tensors)
    shutil.rmtree(path)
    synthetic_model_write(path, tensors, shape=TINY)


def test_it_names_the_first_tensor_name_that_differs(models):
    def rename(t):
        t["model.layers.1.mlp.up_proj.weight_renamed"] = t.pop("model.layers.1.mlp.up_proj.weight")

    rewrite(models, models.fts[1], rename)
    with pytest.raises(
        MergeError,
        match=r"tensor names differ: model\.layers\.1\.mlp\.up_proj\.weight is in .*base but not in .*ft2",
    ):
        run(models, ties_config(models))


def test_it_refuses_different_shapes(models):
    def reshape(t):
        t["model.layers.0.mlp.down_proj.weight"] = torch.zeros(16, 25)

    rewrite(models, models.fts[0], reshape)
    with pytest.raises(
        MergeError, match=r"shapes differ for model\.layers\.0\.mlp\.down_proj\.weight"
    ):
        run(models, ties_config(models))


def test_vocab_mismatch_is_refused_unless_configured(models):
    def grow(t):
        for name in ("model.embed_tokens.weight", "lm_head.weight"):
            t[name] = torch.cat([t[name], torch.ones(2, TINY.hidden)])

    rewrite(models, models.fts[0], grow)
    with pytest.raises(
        MergeError, match=r"vocab size mismatch on model\.embed_tokens\.weight: .* 32 rows, .* 34"
    ):
        run(models, ties_config(models))
    merged = merge(models, ties_config(models, allow_vocab_mismatch=True))
    assert merged["lm_head.weight"].shape == (TINY.vocab, TINY.hidden)


def test_it_refuses_when_the_disk_is_too_small(models, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(driver_module.shutil, "disk_usage", lambda path: usage(10**9, 10**9, 1000))
    with pytest.raises(MergeError, match="not enough free disk space"):
        run(models, ties_config(models))
    assert leftovers(models) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"tokenizer": {"source": "base"}}, "unsupported config key.*tokenizer"),
        ({"frobnicate": 1}, "unknown config key.*frobnicate"),
        ({"merge_method": "breadcrumbs"}, "unsupported merge_method 'breadcrumbs'"),
        ({"parameters": {"densty": 0.5}}, "unknown parameter.*densty"),
        ({"dtype": "int8"}, "unsupported dtype"),
        ({"tokenizer_source": "union"}, "union is not supported"),
    ],
)
def test_unknown_or_unsupported_keys_are_errors_that_name_them(models, change, message):
    with pytest.raises(MergeError, match=message):
        config_parse(data={**ties_config(models), **change})


def test_per_model_unknown_keys_and_misplaced_globals_are_errors(models):
    cfg = ties_config(models)
    cfg["models"][0]["parameters"]["normalize"] = False
    with pytest.raises(MergeError, match="'normalize' .* is a global parameter"):
        config_parse(data=cfg)
    cfg = ties_config(models)
    cfg["models"][0]["weigth"] = 1
    with pytest.raises(MergeError, match=r"unknown key\(s\) in models\[0\]: weigth"):
        config_parse(data=cfg)


def test_a_missing_required_weight_is_named(models):
    cfg = ties_config(models)
    del cfg["models"][2]["parameters"]["weight"]
    with pytest.raises(MergeError, match="missing required parameter weight for .*ft3"):
        run(models, cfg)


def test_parameters_take_gradients_and_filters_per_tensor(models):
    """Top-level per-model parameters apply to every model; filters pick per tensor."""
    cfg = {
        "merge_method": "task_arithmetic",
        "base_model": str(models.base),
        "models": [{"model": str(models.fts[0])}],
        "parameters": {"weight": [{"filter": "mlp", "value": [0.0, 1.0]}, {"value": 0.0}]},
    }
    merged = merge(models, cfg)
    base, ft = models.tensors[models.base], models.tensors[models.fts[0]]
    torch.testing.assert_close(
        merged["model.layers.0.mlp.up_proj.weight"], base["model.layers.0.mlp.up_proj.weight"]
    )
    torch.testing.assert_close(
        merged["model.layers.2.mlp.up_proj.weight"], ft["model.layers.2.mlp.up_proj.weight"]
    )
    mid = 0.5 * (
        base["model.layers.1.mlp.up_proj.weight"] + ft["model.layers.1.mlp.up_proj.weight"]
    )
    torch.testing.assert_close(merged["model.layers.1.mlp.up_proj.weight"], mid)
    torch.testing.assert_close(merged["lm_head.weight"], base["lm_head.weight"])


def test_slerp_requires_exactly_two_models(models):
    cfg = {
        "merge_method": "slerp",
        "base_model": str(models.base),
        "models": [{"model": str(p)} for p in models.fts],
        "parameters": {"t": 0.5},
    }
    with pytest.raises(MergeError, match="slerp merges exactly 2 models"):
        config_parse(data=cfg)


def test_model_stock_needs_two_models_besides_the_base(models):
    cfg = {
        "merge_method": "model_stock",
        "base_model": str(models.base),
        "models": [{"model": str(models.fts[0])}],
    }
    with pytest.raises(MergeError, match="model_stock needs at least 2 models besides base_model"):
        config_parse(data=cfg)


def test_della_density_and_epsilon_must_stay_inside_zero_one(models):
    cfg = ties_config(models)
    cfg["merge_method"] = "della"
    cfg["parameters"] = {"epsilon": 0.3}
    cfg["models"][1]["parameters"]["density"] = 0.2
    with pytest.raises(MergeError, match=r"della: density \+/- epsilon .*ft2"):
        run(models, cfg)
    assert leftovers(models) == []


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_inputs_are_merged_in_fp32(tmp_path, dtype):
    """bf16/fp16 inputs: the result is the fp32 merge rounded once to the input dtype."""
    base = synthetic_tensors(TINY, seed=1)
    ft = synthetic_tensors(TINY, seed=2, base=base)
    synthetic_model_write(tmp_path / "base", base, shape=TINY, dtype=dtype)
    synthetic_model_write(tmp_path / "ft", ft, shape=TINY, dtype=dtype)
    cfg = {
        "merge_method": "linear",
        "models": [
            {"model": str(tmp_path / "base"), "parameters": {"weight": 1.0}},
            {"model": str(tmp_path / "ft"), "parameters": {"weight": 2.0}},
        ],
    }
    (tmp_path / "m.yml").write_text(yaml.safe_dump(cfg))
    out = merge_run(config=config_load(path=tmp_path / "m.yml"), output_dir=tmp_path / "out")
    merged = output_load(out.output_dir)
    for name, b in base.items():
        want = ((b.to(dtype).float() + 2.0 * ft[name].to(dtype).float()) / 3.0).to(dtype)
        assert torch.equal(merged[name], want), name


def test_device_cuda_runs_where_cuda_exists_and_is_a_clear_error_elsewhere(models):
    if torch.cuda.is_available():
        merged = merge(models, ties_config(models), device="cuda")
        assert set(merged) == set(models.tensors[models.base])
    else:
        with pytest.raises(MergeError, match="CUDA is not available"):
            run(models, ties_config(models), device="cuda")
        assert leftovers(models) == []
