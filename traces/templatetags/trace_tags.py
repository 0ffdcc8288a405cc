"""Display helpers for traces: pretty JSON (escaped), durations, step icons."""

from __future__ import annotations

import json
from typing import Any

from django import template

from traces.rendering import duration_text

register = template.Library()

FOLD_AT = 2000  # characters of pretty JSON shown before the rest is folded away


@register.filter
def pretty_json(value: Any) -> str:
    """Indented JSON text. Returned as plain text, so the template escapes it."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def _fold_points(text: str) -> tuple[int, int]:
    """Where long text is folded: (end of the part shown, start of the folded rest).

    At the line break just before FOLD_AT when there is one close by, so pretty JSON
    folds between lines rather than in the middle of a value; else at FOLD_AT.
    """
    if len(text) <= FOLD_AT:
        return len(text), len(text)
    newline = text.rfind("\n", 0, FOLD_AT)
    if newline >= FOLD_AT * 3 // 4:
        return newline, newline + 1
    return FOLD_AT, FOLD_AT


@register.filter
def fold_head(text: str) -> str:
    return text[: _fold_points(text)[0]]


@register.filter
def fold_tail(text: str) -> str:
    return text[_fold_points(text)[1] :]


@register.filter
def line_count(text: str) -> int:
    return text.count("\n") + 1 if text else 0


ms = register.filter("ms", duration_text)


@register.filter
def seconds(value: float | None) -> str:
    if value is None:
        return "—"
    return duration_text(value * 1000)
