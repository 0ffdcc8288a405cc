"""Benchmark: our merge engine against mergekit-yaml on ~1 GB bf16 llama models.

    .venv/bin/python bench/merge.py [--layers N] [--methods ties,linear] [--repeat R]

Generates (once, cached under $TMPDIR/tooltrail-merge-bench-v1, or ``-L<N>``
for another layer count) a random base model and three fine-tunes of about
1 GB each in bf16 (8 layers; ``--layers 2`` gives 0.44 GB), then runs TIES
(density 0.5, weights 0.3/0.3/0.4) and linear with ours (``manage.py
merge_models``) and with mergekit (``.venv-mergekit``, see
scripts/mergekit_venv.sh) on the same YAML. For each run it prints wall time,
CPU time (user + sys) and peak RSS of the process tree, then the difference
between the outputs; with ``--repeat`` each engine runs R times, alternating,
and the best (lowest) wall and CPU times count. On a shared machine wall time
follows the load; CPU time much less so. The last lines are
``ties_cpu_speedup=<mergekit CPU time / ours>`` and
``ties_speedup=<mergekit wall time / ours>``.

Peak RSS comes from wait4(), which on Linux also counts the parent's resident
size at fork time; so this parent imports no torch and does all heavy work
(generation, comparison) in child processes of its own.
"""

from __future__ import annotations

import argparse
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
LAYERS = 8
MERGEKIT = REPO / ".venv-mergekit" / "bin" / "mergekit-yaml"
WEIGHTS = (0.3, 0.3, 0.4)


def _cache(layers: int) -> Path:
    return CACHE if layers == LAYERS else CACHE.with_name(f"{CACHE.name}-L{layers}")


def _shape(layers: int):
    from agents.training.merge.synthetic import LlamaShape

    return LlamaShape(
        layers=layers, hidden=2048, intermediate=5632, vocab=32000, heads=16, kv_heads=4
    )


def models_generate(layers: int) -> None:
    """(child) Create base + ft1..ft3; a marker file says the set is complete."""
    import torch

    from agents.training.merge.synthetic import synthetic_model_write, synthetic_tensors

    shape = _shape(layers)
    root = _cache(layers)
    shutil.rmtree(root, ignore_errors=True)
    base = synthetic_tensors(shape, seed=0)
    for name in ("base", "ft1", "ft2", "ft3"):
        i = int(name[-1]) if name != "base" else 0
        tensors = base if i == 0 else synthetic_tensors(shape, seed=i, base=base, noise=0.005)
        synthetic_model_write(
            root / name, tensors, shape=shape, dtype=torch.bfloat16, max_shard_bytes=400 * 1000**2
        )
        del tensors
    (root / "complete").write_text("ok\n")


def models_ensure(layers: int) -> Path:
    root = _cache(layers)
    if not (root / "complete").exists():
        print(f"generating models under {root} ...", flush=True)
        subprocess.run([sys.executable, __file__, "--generate", str(layers)], cwd=REPO, check=True)
    return root


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


def timed(cmd: list[str]) -> tuple[float, float, float]:
    """Run ``cmd``; return (wall s, CPU s (user + sys), peak RSS GiB), its children included."""
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
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024**2


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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=LAYERS, help="decoder layers (8: ~1 GB)")
    parser.add_argument("--methods", default="ties,linear", help="comma-separated: ties,linear")
    parser.add_argument("--repeat", type=int, default=1, help="runs per engine; the best counts")
    args = parser.parse_args()
    if not MERGEKIT.exists():
        raise SystemExit("mergekit venv missing: run scripts/mergekit_venv.sh")
    root = models_ensure(args.layers)
    size = sum(f.stat().st_size for f in (root / "base").glob("*.safetensors"))
    print(f"models: base + 3 fine-tunes, {size / 1e9:.2f} GB each (bf16), {os.cpu_count()} CPUs")
    print(f"load average before the runs: {os.getloadavg()[0]:.1f}")
    for f in root.rglob("*.safetensors"):  # warm the page cache for both engines alike
        with open(f, "rb") as fh:
            while fh.read(1 << 24):
                pass
    results = {}
    with tempfile.TemporaryDirectory(prefix="merge-bench-") as tmp:
        work = Path(tmp)
        for method in args.methods.split(","):
            cfg = config_write(method, root, work)
            ours_out, theirs_out = work / f"ours-{method}", work / f"mergekit-{method}"
            ours = [sys.executable, "manage.py", "merge_models", str(cfg), str(ours_out)]
            theirs = [str(MERGEKIT), str(cfg), str(theirs_out), "--no-copy-tokenizer", "--quiet"]
            runs = {"mergekit": [], "ours": []}
            for attempt in range(args.repeat):
                last = attempt == args.repeat - 1
                for label, cmd, out in (("mergekit", theirs, theirs_out), ("ours", ours, ours_out)):
                    runs[label].append(timed(cmd))
                    if not last:
                        shutil.rmtree(out)
            compared = subprocess.run(
                [sys.executable, __file__, "--compare", str(ours_out), str(theirs_out)],
                cwd=REPO,
                check=True,
                capture_output=True,
                text=True,
            )
            worst, beyond = json.loads(compared.stdout.strip().splitlines()[-1])
            best = {
                label: (min(r[0] for r in rs), min(r[1] for r in rs), max(r[2] for r in rs))
                for label, rs in runs.items()
            }
            results[method] = best
            for label in ("mergekit", "ours"):
                wall, cpu, rss = best[label]
                print(
                    f"{method}: {label:8s} {wall:.1f} s wall, {cpu:.1f} s CPU (user+sys), "
                    f"peak RSS {rss:.2f} GiB"
                )
            (tw, tc, tr), (ow, oc, orss) = best["mergekit"], best["ours"]
            print(
                f"{method}: speedup {tw / ow:.2f}x wall, {tc / oc:.2f}x CPU, "
                f"memory ratio {orss / tr:.2f}, max |ours - mergekit| {worst:.3g}, "
                f"elements beyond 1 bf16 ulp {beyond:.2e}"
            )
            shutil.rmtree(ours_out)
            shutil.rmtree(theirs_out)
    for method, best in results.items():
        print(f"{method}_cpu_speedup={best['mergekit'][1] / best['ours'][1]:.2f}")
    for method in sorted(results, key=lambda m: m == "ties"):  # ties_speedup= last
        best = results[method]
        print(f"{method}_speedup={best['mergekit'][0] / best['ours'][0]:.2f}")


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    if sys.argv[1:2] == ["--generate"]:
        models_generate(int(sys.argv[2]))
    elif sys.argv[1:2] == ["--compare"]:
        print(json.dumps(outputs_compare(Path(sys.argv[2]), Path(sys.argv[3]))))
    else:
        main()
