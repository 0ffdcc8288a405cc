"""Does a final answer match the expected one? Compared after normalising case, spaces
and punctuation; a longer answer that contains the expected one counts."""

from __future__ import annotations

import re

from .bfcl_ast import Verdict

_NOISE = re.compile(r"[\s\.,;:!?'\"`]+")


def _norm(text: str) -> str:
    return _NOISE.sub(" ", text).strip().lower()


def answer_match(*, answer: str, expected: str) -> Verdict:
    got, want = _norm(answer), _norm(expected)
    if want and (got == want or f" {want} " in f" {got} "):
        return Verdict(True)
    return Verdict(False, "answer:mismatch", [f"expected {expected!r}, got {answer[:200]!r}"])
