"""Inter-annotator agreement, as pure functions of labels.

``units`` is a list of ``{rater: value}`` dicts, one per labelled thing; a rater who
did not label a unit is simply absent (missing values are allowed). Values are any
hashable labels (verdicts, category slugs) and are compared as nominal data.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Hashable, Sequence

Unit = dict[str, Hashable]


def cohen_kappa(a: Sequence[Hashable], b: Sequence[Hashable]) -> float | None:
    """Cohen's kappa of two raters over the same items, (p_o − p_e) / (1 − p_e).
    None when it is undefined: no items, or chance agreement is 1 (both raters
    used one and the same label throughout)."""
    if len(a) != len(b):
        raise ValueError("both raters must label the same items")
    n = len(a)
    if n == 0:
        return None
    observed = sum(x == y for x, y in zip(a, b, strict=True)) / n
    count_a, count_b = Counter(a), Counter(b)
    expected = sum(count_a[v] * count_b[v] for v in count_a) / (n * n)
    if expected == 1:
        return None
    return (observed - expected) / (1 - expected)


def krippendorff_alpha(units: Sequence[Unit]) -> float | None:
    """Krippendorff's alpha (nominal) over any number of raters, missing values
    allowed, computed by the ``krippendorff`` package. None when undefined (fewer
    than two values in the data, or no unit labelled twice)."""
    raters = sorted({r for unit in units for r in unit})
    pairable = [u for u in units if len(u) >= 2]
    values = sorted({v for unit in pairable for v in unit.values()}, key=str)
    if len(values) < 2 or not pairable:
        return None
    code = {v: float(i) for i, v in enumerate(values)}
    # Loaded here, not at import: every web and worker process imports this module
    # (the annotation template tags do), and numpy is ~15 MB of each tool call's fork.
    import krippendorff
    import numpy as np

    matrix = np.full((len(raters), len(pairable)), np.nan)
    for j, unit in enumerate(pairable):
        for i, rater in enumerate(raters):
            if rater in unit:
                matrix[i, j] = code[unit[rater]]
    return float(krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal"))


def pairwise_kappa(units: Sequence[Unit]) -> list[dict]:
    """Cohen's kappa for every pair of raters, on the units both labelled."""
    raters = sorted({r for unit in units for r in unit})
    pairs = []
    for a, b in itertools.combinations(raters, 2):
        both = [u for u in units if a in u and b in u]
        pairs.append(
            {
                "a": a,
                "b": b,
                "n": len(both),
                "kappa": cohen_kappa([u[a] for u in both], [u[b] for u in both]),
                "agreement": (sum(u[a] == u[b] for u in both) / len(both)) if both else None,
            }
        )
    return pairs


def summary(units: Sequence[Unit]) -> dict:
    """Kappa (Cohen's for two raters; the mean of the pairs' — Light's kappa — for
    more), alpha, the pairs, and how many units were labelled more than once."""
    pairs = pairwise_kappa(units)
    kappas = [p["kappa"] for p in pairs if p["kappa"] is not None]
    return {
        "kappa": (sum(kappas) / len(kappas)) if kappas else None,
        "alpha": krippendorff_alpha(units),
        "pairs": pairs,
        "units": sum(1 for u in units if len(u) >= 2),
    }
