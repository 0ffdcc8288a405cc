"""Each merge method against a plain, obviously-correct reference written here.

The references use full sorts, explicit loops and textbook formulas; the
engine uses O(n) selection, chunking and in-place arithmetic. fp32 models,
results within 1e-6.
"""

from __future__ import annotations

import math
import re

import pytest
import torch

from agents.training.merge.driver import rng_for
from agents.training.merge.methods import (
    generalized_task_arithmetic,
    linear,
    pcb,
    slerp,
    stream_select,
)

from .conftest import TINY, merge

ATOL = 1e-6


def layer_t(name: str) -> float:
    m = re.search(r"layers\.(\d+)\.", name)
    return int(m.group(1)) / (TINY.layers - 1) if m else 0.0


def keep_top(delta: torch.Tensor, density: float) -> torch.Tensor:
    """Keep the k largest |delta| (k = int(density * n), at least 1); stable sort for ties."""
    flat = delta.flatten()
    k = max(1, int(density * flat.numel()))
    order = torch.sort(flat.abs(), descending=True, stable=True).indices
    keep = torch.zeros_like(flat)
    keep[order[:k]] = 1
    return (flat * keep).reshape(delta.shape)


def ties_mix(deltas: list[torch.Tensor], weights: list[float], normalize: bool) -> torch.Tensor:
    """TIES: elect the sign of the summed weighted deltas, average the agreeing ones."""
    weighted = [w * d for w, d in zip(weights, deltas, strict=True)]
    total = sum(weighted)
    sign = torch.where(total >= 0, 1.0, -1.0)
    mixed = torch.zeros_like(total)
    divisor = torch.zeros_like(total)
    for w, wd in zip(weights, weighted, strict=True):
        agree = torch.sign(wd) == sign
        mixed += torch.where(agree, wd, 0.0)
        divisor += torch.where(agree, w, 0.0)
    divisor[divisor == 0] = 1
    return mixed / divisor if normalize else mixed


def gta_config(models, method: str, weights, densities, **parameters) -> dict:
    entries = [
        {"model": str(p), "parameters": {"weight": w, "density": d}}
        for p, w, d in zip(models.fts, weights, densities, strict=True)
    ]
    cfg = {"merge_method": method, "base_model": str(models.base), "models": entries}
    if parameters:
        cfg["parameters"] = parameters
    return cfg


def assert_close(out: dict, expected: dict) -> None:
    assert set(out) == set(expected)
    for name, want in expected.items():
        torch.testing.assert_close(out[name], want, atol=ATOL, rtol=0, msg=name)


def test_linear_matches_reference_on_random_model(models):
    weights = [0.5, 0.2, 0.3, 1.0]
    paths = [*models.fts, models.base]
    cfg = {
        "merge_method": "linear",
        "models": [
            {"model": str(p), "parameters": {"weight": w}}
            for p, w in zip(paths, weights, strict=True)
        ],
    }
    out = merge(models, cfg)
    expected = {
        name: sum(w * models.tensors[p][name] for p, w in zip(paths, weights, strict=True))
        / sum(weights)
        for name in models.tensors[models.base]
    }
    assert_close(out, expected)


def test_task_arithmetic_matches_reference_on_random_model(models):
    weights = [0.7, -0.2, 0.4]
    out = merge(
        models, gta_config(models, "task_arithmetic", weights, [1, 1, 1], **{"lambda": 0.8})
    )
    base = models.tensors[models.base]
    expected = {
        name: b
        + 0.8
        * sum(w * (models.tensors[p][name] - b) for p, w in zip(models.fts, weights, strict=True))
        for name, b in base.items()
    }
    assert_close(out, expected)


@pytest.mark.parametrize("normalize", [True, False])
def test_ties_matches_reference_on_random_model(models, normalize):
    weights, densities = [0.3, 0.3, 0.4], [0.5, 0.3, 0.7]
    out = merge(models, gta_config(models, "ties", weights, densities, normalize=normalize))
    base = models.tensors[models.base]
    expected = {}
    for name, b in base.items():
        deltas = [
            keep_top(models.tensors[p][name] - b, d)
            for p, d in zip(models.fts, densities, strict=True)
        ]
        expected[name] = b + ties_mix(deltas, weights, normalize)
    assert_close(out, expected)


def dare_reference(models, name: str, seed: int, densities) -> list[torch.Tensor]:
    """Random drop with the engine's per-(seed, tensor, model) stream, then L1 rescale."""
    b = models.tensors[models.base][name]
    deltas = []
    for i, (p, density) in enumerate(zip(models.fts, densities, strict=True)):
        d = models.tensors[p][name] - b
        keep = torch.rand(d.shape, generator=rng_for(seed=seed, name=name, index=i)) < density
        dropped = torch.where(keep, d, 0.0)
        deltas.append(dropped * (d.abs().sum() / dropped.abs().sum()))
    return deltas


@pytest.mark.parametrize("method", ["dare_linear", "dare_ties"])
def test_dare_matches_reference_on_random_model(models, method):
    weights, densities = [0.5, 0.3, 0.4], [0.4, 0.6, 0.5]
    out = merge(models, gta_config(models, method, weights, densities), seed=7)
    expected = {}
    for name, b in models.tensors[models.base].items():
        deltas = dare_reference(models, name, 7, densities)
        if method == "dare_ties":
            mixed = ties_mix(deltas, weights, normalize=False)
        else:
            mixed = sum(w * d for w, d in zip(weights, deltas, strict=True))
        expected[name] = b + mixed
    assert_close(out, expected)


def della_reference(models, name: str, seed: int, densities, epsilon: float) -> list:
    """DELLA's rank-scaled keep probability per row, the engine's random stream, L1 rescale."""
    b = models.tensors[models.base][name]
    deltas = []
    for i, (p, density) in enumerate(zip(models.fts, densities, strict=True)):
        d = models.tensors[p][name] - b
        rows = d.reshape(1, -1) if d.dim() == 1 else d
        cols = rows.shape[1]
        ranks = torch.sort(rows.abs(), dim=1, stable=True).indices.argsort(dim=1).float()
        probs = (density - epsilon) + ranks / (cols - 1) * 2 * epsilon
        draw = torch.rand(rows.shape, generator=rng_for(seed=seed, name=name, index=i))
        dropped = torch.where(draw < probs, rows, 0.0).reshape(d.shape)
        deltas.append(dropped * (d.abs().sum() / dropped.abs().sum()))
    return deltas


@pytest.mark.parametrize("method", ["della", "della_linear"])
def test_della_matches_reference_on_random_model(models, method):
    weights, densities = [0.5, 0.3, 0.4], [0.4, 0.6, 0.5]
    cfg = gta_config(models, method, weights, densities, epsilon=0.2)
    out = merge(models, cfg, seed=5)
    expected = {}
    for name, b in models.tensors[models.base].items():
        deltas = della_reference(models, name, 5, densities, 0.2)
        if method == "della":
            mixed = ties_mix(deltas, weights, normalize=True)
        else:
            mixed = sum(w * d for w, d in zip(weights, deltas, strict=True))
        expected[name] = b + mixed
    assert_close(out, expected)


def model_stock_reference(base: torch.Tensor, others: list, filter_wise: bool) -> torch.Tensor:
    """Jang et al.'s formula: t = N cos / (1 + (N - 1) cos) from the mean pairwise cosine."""
    shape = base.shape
    rows = (lambda x: x.reshape(-1, shape[-1])) if filter_wise else (lambda x: x.reshape(1, -1))
    w0, ws = rows(base), [rows(x) for x in others]
    offsets = [w - w0 for w in ws]
    cosines = [
        torch.nn.functional.cosine_similarity(a, b, dim=1, eps=0)
        for k, a in enumerate(offsets)
        for b in offsets[k + 1 :]
    ]
    cos = torch.stack(cosines).mean(dim=0).unsqueeze(1)
    n = len(ws)
    t = n * cos / (1 + (n - 1) * cos)
    return (t * sum(ws) / n + (1 - t) * w0).reshape(shape)


@pytest.mark.parametrize("filter_wise", [False, True])
def test_model_stock_matches_reference_on_random_model(models, filter_wise):
    cfg = {
        "merge_method": "model_stock",
        "base_model": str(models.base),
        "models": [{"model": str(p)} for p in models.fts],
        "parameters": {"filter_wise": filter_wise},
    }
    out = merge(models, cfg)
    expected = {
        name: model_stock_reference(b, [models.tensors[p][name] for p in models.fts], filter_wise)
        for name, b in models.tensors[models.base].items()
    }
    assert_close(out, expected)


def slerp_reference(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Textbook SLERP on the flattened tensors, in float64."""
    x, y = a.double().flatten(), b.double().flatten()
    cos = float(torch.dot(x / x.norm(), y / y.norm()))
    if abs(cos) > 0.9995:
        r = (1 - t) * x + t * y
    else:
        theta = math.acos(cos)
        r = (math.sin((1 - t) * theta) * x + math.sin(t * theta) * y) / math.sin(theta)
    return r.reshape(a.shape).float()


def test_slerp_matches_reference_with_t_gradient_and_filters(models):
    t_setting = [{"filter": "self_attn", "value": [0.0, 0.5, 1.0]}, {"value": 0.25}]
    cfg = {
        "merge_method": "slerp",
        "base_model": str(models.base),
        "models": [{"model": str(models.base)}, {"model": str(models.fts[0])}],
        "parameters": {"t": t_setting},
    }
    out = merge(models, cfg)
    expected = {}
    for name, b in models.tensors[models.base].items():
        t = layer_t(name) if "self_attn" in name else 0.25
        expected[name] = slerp_reference(b, models.tensors[models.fts[0]][name], t)
    assert_close(out, expected)
    # the gradient really varies per layer: layer 0 is the base, the last layer the fine-tune
    q0, q2 = "model.layers.0.self_attn.q_proj.weight", "model.layers.2.self_attn.q_proj.weight"
    assert torch.equal(out[q0], models.tensors[models.base][q0])
    torch.testing.assert_close(out[q2], models.tensors[models.fts[0]][q2], atol=ATOL, rtol=0)


def pcb_reference(base: torch.Tensor, others: list[torch.Tensor], ratio: float) -> torch.Tensor:
    """The PCB authors' algorithm (sort-based clamps, min-max normalisation) on one tensor."""

    def normalize(x):
        lo, hi = x.min(dim=1, keepdim=True).values, x.max(dim=1, keepdim=True).values
        span = hi - lo
        return (x - lo) / torch.where(span > 0, span, torch.ones_like(span))

    def clamp(x, min_ratio, max_ratio):
        d = x.size(1)
        s = torch.sort(x, dim=1).values
        lo = s[:, int(d * min_ratio)].unsqueeze(1)
        hi = s[:, int(d * (1 - max_ratio) - 1)].unsqueeze(1)
        return torch.clamp(x, lo, hi)

    tv = torch.stack([(o - base).flatten() for o in others])
    n = tv.shape[0]
    magnitude = clamp(tv.abs(), 1e-4, 1e-4)
    clamped = torch.sign(tv) * magnitude
    intra = torch.exp(n * normalize(magnitude) ** 2)
    inter = torch.tanh(tv * tv.sum(dim=0))
    scale = normalize(clamp(intra * inter, 1 - ratio, 0))
    merged = (clamped * scale).sum(dim=0) / torch.clamp(scale.sum(dim=0), min=1e-12)
    return base + merged.reshape(base.shape)


def test_pcb_matches_reference_on_random_model(models):
    cfg = {
        "merge_method": "pcb",
        "base_model": str(models.base),
        "models": [{"model": str(p)} for p in models.fts],
        "parameters": {"density": 0.3},
    }
    out = merge(models, cfg)
    expected = {
        name: pcb_reference(b, [models.tensors[p][name] for p in models.fts], 0.3)
        for name, b in models.tensors[models.base].items()
    }
    assert_close(out, expected)


def test_layer_swap_takes_named_layers_and_tensors(models):
    cfg = {
        "merge_method": "layer_swap",
        "base_model": str(models.base),
        "models": [
            {"model": str(models.fts[0]), "parameters": {"layers": [[0, 2]]}},
            {
                "model": str(models.fts[1]),
                "parameters": {"tensors": ["lm_head.*", "model.layers.2.mlp.*"]},
            },
        ],
    }
    out = merge(models, cfg)
    for name, got in out.items():
        if re.match(r"model\.layers\.[01]\.", name):
            source = models.fts[0]
        elif name.startswith("lm_head") or name.startswith("model.layers.2.mlp."):
            source = models.fts[1]
        else:
            source = models.base
        assert torch.equal(got, models.tensors[source][name]), name


def test_stream_select_is_exact_on_large_tensors_with_ties():
    gen = torch.Generator().manual_seed(3)
    rows = torch.randn(2, 300_000, generator=gen).abs()
    rows[0, :1000] = rows[0, 1000]  # a block of equal values
    rows[1] = torch.randint(0, 5, (300_000,), generator=gen).float()  # almost all ties
    ordered = torch.sort(rows, dim=1).values
    queries = [(row, rank) for row in (0, 1) for rank in (1, 17, 150_000, 299_999, 300_000)]
    answers = stream_select(lambda where: rows[:, where], 300_000, queries)
    for (row, rank), (value, above, equal) in zip(queries, answers, strict=True):
        assert value == float(ordered[row, rank - 1])
        assert above == int((rows[row] > value).sum())
        assert torch.equal(equal, (rows[row] == value).nonzero().squeeze(1))


def test_ties_and_pcb_stream_exactly_over_large_bf16_tensors():
    """Tensors larger than one chunk, bf16 inputs (so many equal |delta| at the cut)."""
    gen = torch.Generator().manual_seed(11)
    base = (0.02 * torch.randn(600, 512, generator=gen)).bfloat16()
    others = [
        (base.float() + 0.005 * torch.randn(600, 512, generator=gen)).bfloat16() for _ in range(3)
    ]
    b, xs = base.float(), [x.float() for x in others]
    weights, densities = [0.3, 0.3, 0.4], [0.5, 0.2, 0.7]
    released = []

    got = generalized_task_arithmetic(
        base,
        others,
        weights=weights,
        densities=densities,
        sparsification="magnitude",
        consensus=True,
        normalize=True,
        rescale=False,
        release=lambda start, end: released.append((start, end)),
    )
    # the driver's page-release hook saw every element after each pass (passes may
    # chunk differently): each element released as many times as any other, at least once
    times = torch.zeros(base.numel(), dtype=torch.int32)
    for start, end in released:
        times[start:end] += 1
    assert int(times.min()) == int(times.max()) >= 1
    deltas = [keep_top(x - b, d) for x, d in zip(xs, densities, strict=True)]
    torch.testing.assert_close(got, b + ties_mix(deltas, weights, True), atol=ATOL, rtol=0)

    got = pcb(base, others, density=0.3)
    torch.testing.assert_close(got, pcb_reference(b, xs, 0.3), atol=ATOL, rtol=0)


def test_methods_leave_their_fp32_inputs_untouched():
    gen = torch.Generator().manual_seed(5)
    base = torch.randn(40, 30, generator=gen)
    others = [base + 0.1 * torch.randn(40, 30, generator=gen) for _ in range(2)]
    copies = [t.clone() for t in (base, *others)]
    linear([base, *others], [1.0, 2.0, 3.0])
    slerp(base, others[0], 0.3)
    pcb(base, others, density=0.5)
    generalized_task_arithmetic(
        base,
        others,
        weights=[1.0, 1.0],
        densities=[0.5, 0.5],
        sparsification="magnitude",
        consensus=True,
        normalize=True,
        rescale=True,
    )
    for before, after in zip(copies, (base, *others), strict=True):
        assert torch.equal(before, after)
