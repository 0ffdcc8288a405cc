"""Agreement measures, checked against published worked examples."""

from __future__ import annotations

import pytest

from traces.agreement import cohen_kappa, krippendorff_alpha, summary


def test_cohens_kappa_matches_the_textbook_example():
    # 50 proposals read by two editors: 20 both yes, 15 both no, 5 A-yes/B-no and
    # 10 A-no/B-yes: p_o = 0.7, p_e = 0.5, kappa = 0.4 (Wikipedia, "Cohen's kappa").
    a = ["yes"] * 20 + ["yes"] * 5 + ["no"] * 10 + ["no"] * 15
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)


def test_cohens_kappa_is_undefined_when_both_always_say_the_same_thing():
    assert cohen_kappa(["good"] * 4, ["good"] * 4) is None
    assert cohen_kappa([], []) is None


def test_krippendorffs_alpha_matches_his_own_worked_example():
    # Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", the example
    # with 4 observers, 12 units and missing values: nominal alpha = 0.743.
    rows = {
        "A": [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
        "B": [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
        "C": [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
        "D": [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
    }
    units = [
        {rater: values[j] for rater, values in rows.items() if values[j] is not None}
        for j in range(12)
    ]
    assert krippendorff_alpha(units) == pytest.approx(0.743, abs=5e-4)


def test_alpha_takes_any_labels_and_is_undefined_without_variety():
    units = [{"ana": "good", "ben": "good"}, {"ana": "bad", "ben": "bad"}, {"ana": "good"}]
    assert krippendorff_alpha(units) == pytest.approx(1.0)
    assert krippendorff_alpha([{"ana": "good", "ben": "good"}]) is None


def test_summary_gives_pairs_and_lights_kappa_for_three_raters():
    units = [
        {"a": "good", "b": "good", "c": "bad"},
        {"a": "bad", "b": "bad", "c": "bad"},
        {"a": "good", "b": "bad", "c": "good"},
        {"a": "bad", "b": "bad"},
    ]
    found = summary(units)
    pairs = {(p["a"], p["b"]): p for p in found["pairs"]}
    assert set(pairs) == {("a", "b"), ("a", "c"), ("b", "c")}
    assert pairs[("a", "c")]["n"] == 3
    kappas = [p["kappa"] for p in found["pairs"] if p["kappa"] is not None]
    assert found["kappa"] == pytest.approx(sum(kappas) / len(kappas))
    assert found["units"] == 4
