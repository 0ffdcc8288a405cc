"""HTML for step nodes, built in Python.

The step tree is the hot path of the debugger: a 10,000-step trace is 10,000 nodes on
first load, and every live step is one node in a websocket message. A recursive
``{% include %}`` costs far more per node than the node itself, so nodes are built
here with plain escaped strings (about 20× faster), and one function serves the full
page, the websocket catch-up and the live message alike.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from django.urls import reverse
from django.utils.html import escape

from .models import Step


def duration_text(value_ms: float | None) -> str:
    if value_ms is None:
        return "—"
    if value_ms < 1000:
        return f"{value_ms:.0f} ms"
    return f"{value_ms / 1000:.2f} s"


def _text(value) -> str:
    if isinstance(value, str):
        return value[:140]
    try:
        return json.dumps(value, ensure_ascii=False, default=str)[:140]
    except (ValueError, RecursionError):
        return "…"


def step_summary(step: Step) -> str:
    """One line about a step for the tree, whatever shape its stored data has (a step
    may come from an outside exporter, or an older version of this code)."""
    if step.error:
        return str(step.error)[:140]
    out = step.output if isinstance(step.output, dict) else {}
    if step.kind == Step.Kind.MODEL_CALL:
        calls = out.get("tool_calls")
        if isinstance(calls, list) and calls:
            names = ", ".join(
                str(c.get("name", "?")) if isinstance(c, dict) else "?" for c in calls[:20]
            )
            return f"{len(calls)} tool call{'s' if len(calls) > 1 else ''}: {names}"[:140]
        return _text(out.get("content") or "")
    if step.kind == Step.Kind.FINAL:
        return _text(out.get("content") or "")
    return _text(step.output if step.kind == Step.Kind.TOOL_RESULT else step.input)


_KIND_LABELS = dict(Step.Kind.choices)


def _detail_url_prefix(trace_id) -> str:
    """``/traces/<id>/steps/``: reversed once per tree rather than once per node."""
    return reverse("traces:step_detail", args=[trace_id, 0])[: -len("0/")]


def step_node_html(
    step: Step,
    *,
    children_html: str = "",
    selected_seq: int | None = None,
    new: bool = False,
    url_prefix: str | None = None,
) -> str:
    """One ``li.step`` with its (possibly empty) children list."""
    seq = step.seq
    extra = " is-new" if new else (" is-selected" if seq == selected_seq else "")
    url = f"{url_prefix or _detail_url_prefix(step.trace_id)}{seq}/"
    # kind and status are checked values when our services write them; escaped anyway,
    # since a step may come from an outside exporter one day.
    kind, status = escape(step.kind), escape(step.status)
    return (
        f'<li class="step kind-{kind} status-{status}{extra}" id="step-{seq}" data-seq="{seq}"'
        f' data-kind="{kind}"><a class="step-head" href="?step={seq}" hx-get="{url}">'
        f'<span class="seq">#{seq}</span><span class="kind">{_KIND_LABELS.get(step.kind, kind)}</span>'
        f'<span class="name">{escape(step.name)}</span>'
        f'<span class="summary-text">{escape(step_summary(step))}</span>'
        f'<span class="dur">{duration_text(step.duration_ms)}</span></a>'
        f'<ul class="children" id="children-{seq}">{children_html}</ul></li>'
    )


def tree_html(steps: Iterable[Step], *, selected_seq: int | None = None) -> str:
    """The nested tree of ``steps`` (in seq order). A step whose parent is not among
    them is drawn at the root, so a partial list still renders."""
    steps = list(steps)
    if not steps:
        return ""
    prefix = _detail_url_prefix(steps[0].trace_id)
    ids = {s.id for s in steps}
    children: dict[int | None, list[Step]] = {}
    for step in steps:
        children.setdefault(step.parent_id if step.parent_id in ids else None, []).append(step)

    def render(parent_id: int | None) -> str:
        return "".join(
            step_node_html(
                s, children_html=render(s.id), selected_seq=selected_seq, url_prefix=prefix
            )
            for s in children.get(parent_id, [])
        )

    return render(None)


def step_live_html(step: Step) -> str:
    """A step as the live page appends it: the node under its parent and the new
    cursor (htmx out-of-band swaps)."""
    metadata = step.metadata if isinstance(step.metadata, dict) else {}
    parent = metadata.get("parent_seq")
    parent = parent if isinstance(parent, int) and not isinstance(parent, bool) else "root"
    return (
        f'<div hx-swap-oob="beforeend:#children-{parent}">{step_node_html(step, new=True)}</div>'
        f'<span id="trace-cursor" hx-swap-oob="true" data-cursor="{step.seq}" hidden></span>'
    )


def totals_oob_html(
    *, step_count: int, prompt_tokens: int, completion_tokens: int, duration_ms: float | None
) -> str:
    """The trace summary's running totals, swapped in place as each step lands."""
    return (
        f'<dd id="summary-duration" hx-swap-oob="true">{duration_text(duration_ms)}</dd>'
        f'<dd id="summary-steps" data-testid="step-count" hx-swap-oob="true">{step_count}</dd>'
        f'<dd id="summary-tokens" hx-swap-oob="true">{prompt_tokens} in · {completion_tokens} out</dd>'
    )
