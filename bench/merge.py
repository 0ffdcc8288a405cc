"""Benchmark: our merge engine against mergekit-yaml on ~1 GB bf16 llama models.

    .venv/bin/python bench/merge.py

Generates (once, cached under $TMPDIR/tooltrail-merge-bench-v1) a random base
model and three fine-tunes of about 1 GB each in bf16, then runs TIES
(density 0.5, weights 0.3/0.3/0.4) and linear with ours (``manage.py
merge_models``) and with mergekit (``.venv-mergekit``, see
scripts/mergekit_venv.sh) on the same YAML. For each run it prints wall time
and peak RSS of the process tree, then the difference between the outputs.
The last line is ``ties_speedup=<mergekit time / ours>``.

Peak RSS comes from wait4(), which on Linux also counts the parent's resident
size at fork time; so this parent imports no torch and does all heavy work
(generation, comparison) in child processes of its own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
CACHE = Path(tempfile.gettempdir()) / "tooltrail-merge-bench-v1"
MERGEKIT = REPO / ".venv-mergekit" / "bin" / "mergekit-yaml"
WEIGHTS = (0.3, 0.3, 0.4)


def _shape():
    from agents.training.merge.synthetic import LlamaShape

    return LlamaShape(layers=8, hidden=2048, intermediate=5632, vocab=32000, heads=16, kv_heads=4)


def models_generate() -> None:
    """(child) Create base + ft1..ft3; a marker file says the set is complete."""
    import torch

    from agents.training.merge.synthetic import synthetic_model_write, synthetic_tensors

    shape = _shape()
    shutil.rmtree(CACHE, ignore_errors=True)
    base = synthetic_tensors(shape, seed=0)
    for name in ("base", "ft1", "ft2", "ft3"):
        i = int(name[-1]) if name != "base" else 0
        tensors = base if i == 0 else synthetic_tensors(shape, seed=i, base=base, noise=0.005)
        synthetic_model_write(
            CACHE / name, tensors, shape=shape, dtype=torch.bfloat16, max_shard_bytes=400 * 1000**2
        )
        del tensors
    (CACHE / "complete").write_text("ok\n")


def models_ensure() -> Path:
    if not (CACHE / "complete").exists():
        print(f"generating models under {CACHE} ...", flush=True)
        subprocess.run([sys.executable, __file__, "--generate"], cwd=REPO, check=True)
    return CACHE


def config_write(method: str, root: Path, out: Path) -> Path:
    models = []
    for i, w in enumerate(WEIGHTS, start=1):
        params = {"weight": w, "density": 0.5} if method == "ties" else {"weight": w}
        models.append({"model": str(root / f"ft{i}"), "parameters": params})
    cfg = {"merge_method": method, "models": models, "dtype": "bfloat16"}
    if method == "ties":
        cfg["base_model"] = str(root / "base")
    path = out / f"{method}.yml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def timed(cmd: list[str]) -> tuple[float, float]:
    """Run ``cmd``; return (wall seconds, peak RSS GiB of it and its children)."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    # (the output is read fully before waiting, so a chatty child cannot block)
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.stdout.close()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.stdout.write(output.decode(errors="replace")[-3000:])
        raise SystemExit(f"failed: {' '.join(cmd)}")
    return wall, usage.ru_maxrss / 1024**2


def outputs_compare(a: Path, b: Path) -> tuple[float, float]:
    """(child) Max |a - b| and the fraction of elements more than 1 bf16 ulp apart."""
    import torch
    from safetensors import safe_open

    def where(d: Path) -> dict[str, Path]:
        index = d / "model.safetensors.index.json"
        if index.exists():
            return {k: d / v for k, v in json.loads(index.read_text())["weight_map"].items()}
        return dict.fromkeys(
            safe_open(d / "model.safetensors", "pt").keys(), d / "model.safetensors"
        )

    wa, wb = where(a), where(b)
    if set(wa) != set(wb):
        raise SystemExit(f"tensor names differ: {sorted(set(wa) ^ set(wb))[:3]}")
    worst, beyond, total = 0.0, 0, 0
    for name in sorted(wa):
        with safe_open(wa[name], "pt") as fa, safe_open(wb[name], "pt") as fb:
            x, y = fa.get_tensor(name).float(), fb.get_tensor(name).float()
        diff = (x - y).abs()
        worst = max(worst, float(diff.max()))
        ulp = torch.maximum(x.abs(), y.abs()) * 2.0**-7
        beyond += int((diff > ulp).sum())
        total += diff.numel()
    return worst, beyond / total


def main() -> None:
    if not MERGEKIT.exists():
        raise SystemExit("mergekit venv missing: run scripts/mergekit_venv.sh")
    root = models_ensure()
    size = sum(f.stat().st_size for f in (root / "base").glob("*.safetensors"))
    print(f"models: base + 3 fine-tunes, {size / 1e9:.2f} GB each (bf16), {os.cpu_count()} CPUs")
    print(f"load average before the runs: {os.getloadavg()[0]:.1f}")
    for f in root.rglob("*.safetensors"):  # warm the page cache for both engines alike
        with open(f, "rb") as fh:
            while fh.read(1 << 24):
                pass
    times = {}
    with tempfile.TemporaryDirectory(prefix="merge-bench-") as tmp:
        work = Path(tmp)
        for method in ("ties", "linear"):
            cfg = config_write(method, root, work)
            ours_out, theirs_out = work / f"ours-{method}", work / f"mergekit-{method}"
            ours = [sys.executable, "manage.py", "merge_models", str(cfg), str(ours_out)]
            theirs = [str(MERGEKIT), str(cfg), str(theirs_out), "--no-copy-tokenizer", "--quiet"]
            t_theirs, rss_theirs = timed(theirs)
            t_ours, rss_ours = timed(ours)
            compared = subprocess.run(
                [sys.executable, __file__, "--compare", str(ours_out), str(theirs_out)],
                cwd=REPO,
                check=True,
                capture_output=True,
                text=True,
            )
            worst, beyond = json.loads(compared.stdout.strip().splitlines()[-1])
            times[method] = (t_theirs, t_ours)
            print(f"{method}: mergekit {t_theirs:.1f} s, peak RSS {rss_theirs:.2f} GiB")
            print(f"{method}: ours     {t_ours:.1f} s, peak RSS {rss_ours:.2f} GiB")
            print(
                f"{method}: speedup {t_theirs / t_ours:.2f}x, memory ratio {rss_ours / rss_theirs:.2f}, "
                f"max |ours - mergekit| {worst:.3g}, elements beyond 1 bf16 ulp {beyond:.2e}"
            )
            shutil.rmtree(ours_out)
            shutil.rmtree(theirs_out)
    print(f"linear_speedup={times['linear'][0] / times['linear'][1]:.2f}")
    print(f"ties_speedup={times['ties'][0] / times['ties'][1]:.2f}")


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    if sys.argv[1:2] == ["--generate"]:
        models_generate()
    elif sys.argv[1:2] == ["--compare"]:
        print(json.dumps(outputs_compare(Path(sys.argv[2]), Path(sys.argv[3]))))
    else:
        main()
