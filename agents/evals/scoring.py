"""Which scorers judge an item, and the statistics over a set of results. Pure functions."""

from __future__ import annotations

import math
from typing import Any

from .datasets import FORMAT_BFCL, tool_name_for
from .scorers.answer import answer_match
from .scorers.bfcl_ast import Verdict, bfcl_check
from .scorers.calls import exact_calls, hallucination, tool_selection, tool_use_decision


def calls_to_bfcl(calls: list[dict[str, Any]], functions: list[dict[str, Any]]) -> list[dict]:
    """Our calls (``{"name", "arguments"}``, names as offered to the model) in BFCL's decoded
    form, with each name mapped back to the dataset's own (``math_factorial`` → ``math.factorial``)."""
    original = {tool_name_for(f["name"]): f["name"] for f in functions}
    return [{original.get(c["name"], c["name"]): c.get("arguments") or {}} for c in calls]


def item_score(
    *,
    category: str,
    language: str,
    function_format: str,
    functions: list[dict[str, Any]],
    expected_calls: Any,
    expected_answer: str,
    calls: list[dict[str, Any]],
    answer: str,
) -> dict[str, Any]:
    """Judge one item's run. Returns ``{"valid", "error_type", "reason", "scores": {…}}``
    where every score is a number (1/0 for pass/fail) so experiments can average them."""
    scores: dict[str, float] = {}
    if function_format == FORMAT_BFCL:
        original_calls = calls_to_bfcl(calls, functions)
        verdict = bfcl_check(
            category=category,
            functions=functions,
            ground_truth=expected_calls,
            model_output=original_calls,
            language=language,
        )
        scores["bfcl_ast"] = float(verdict.valid)
        tool_expected = "irrelevance" not in category
        named = [
            {"name": next(iter(c)), "arguments": next(iter(c.values()))} for c in original_calls
        ]
        if expected_calls:
            wanted = [{"name": next(iter(a))} for a in expected_calls]
            scores["tool_selection"] = float(tool_selection(calls=named, expected=wanted))
    elif expected_calls is not None:
        verdict = exact_calls(calls=calls, expected=expected_calls)
        scores["exact_calls"] = float(verdict.valid)
        scores["tool_selection"] = float(tool_selection(calls=calls, expected=expected_calls))
        tool_expected = bool(expected_calls)
        named = calls
    elif expected_answer:
        verdict = answer_match(answer=answer, expected=expected_answer)
        scores["answer_match"] = float(verdict.valid)
        tool_expected = bool(functions)
        named = calls
    else:
        # No expected calls or answer: an irrelevance item — the right move is no call.
        verdict = Verdict(not calls, None if not calls else "irrelevance:tool_called", [])
        tool_expected = False
        named = calls
    scores["tool_use_decision"] = float(tool_use_decision(calls=named, tool_expected=tool_expected))
    scores.update({k: float(v) for k, v in hallucination(calls=named, functions=functions).items()})
    return {
        "valid": verdict.valid,
        "error_type": verdict.error_type or "",
        "reason": verdict.reason,
        "scores": scores,
    }


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float] | None:
    """95% Wilson score interval of a proportion (None for n = 0)."""
    if n == 0:
        return None
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts (b: only A right,
    c: only B right): a binomial test of b against Binomial(b + c, 1/2)."""
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)
