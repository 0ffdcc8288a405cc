"""Display helpers for traces: pretty JSON (escaped), durations, step icons."""

from __future__ import annotations

import json
from typing import Any

from django import template

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


@register.filter
def ms(value: float | None) -> str:
    if value is None:
        return "—"
    if value < 1000:
        return f"{value:.0f} ms"
    return f"{value / 1000:.2f} s"


@register.filter
def seconds(value: float | None) -> str:
    if value is None:
        return "—"
    return ms(value * 1000)


@register.filter
def step_summary(step) -> str:
    """One line about a step for the tree."""
    if step.error:
        return step.error[:140]
    if step.kind == "model_call":
        out = step.output or {}
        calls = out.get("tool_calls") or []
        if calls:
            return f"{len(calls)} tool call{'s' if len(calls) > 1 else ''}: " + ", ".join(
                c["name"] for c in calls
            )
        return (out.get("content") or "")[:140]
    if step.kind == "final":
        return ((step.output or {}).get("content") or "")[:140]
    value = step.output if step.kind == "tool_result" else step.input
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text[:140]
