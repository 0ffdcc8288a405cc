"""HTML for step nodes, built in Python.

The step tree is the hot path of the debugger: a 10,000-step trace is 10,000 nodes on
first load, and every live step is one node in a websocket message. A recursive
``{% include %}`` costs far more per node than the node itself, so nodes are built
here with plain escaped strings (about 20× faster), and one function serves the full
page, the websocket catch-up and the live message alike.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable

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


def step_node_html(
    step: Step,
    *,
    depth: int = 0,
    selected_seq: int | None = None,
    new: bool = False,
) -> str:
    """One row of the step tree: ``li.step`` with its parent and depth as data.

    The tree is a flat list in step order, indented by depth, not nested lists: a trace
    may nest 1,000 deep (browsers flatten markup nested past ~500 elements), rows can be
    streamed and appended in order, and off-screen rows skip rendering
    (``content-visibility``). ``static/js/trace.js`` folds subtrees and bubbles counts.
    """
    seq = step.seq
    extra = " is-new" if new else (" is-selected" if seq == selected_seq else "")
    parent = _parent_seq(step)
    # kind and status are checked values when our services write them; escaped anyway,
    # since a step may come from an outside exporter.
    kind, status = escape(step.kind), escape(step.status)
    # Spans (OTLP ingest) may arrive before their parent: the page adopts a waiting row
    # when the parent's row arrives (static/js/trace.js), as the database does.
    spans = (
        f' data-span="{escape(step.span_id)}" data-parent-span="{escape(step.parent_span_id)}"'
        if step.span_id
        else ""
    )
    start = f"{step.started_at.timestamp() * 1000:.0f}" if step.started_at else ""
    end = f"{step.ended_at.timestamp() * 1000:.0f}" if step.ended_at else start
    return (
        f'<li class="step kind-{kind} status-{status}{extra}" id="step-{seq}" data-seq="{seq}"'
        f' data-parent="{parent if parent is not None else ""}" data-depth="{depth}"'
        f' data-kind="{kind}" data-t0="{start}" data-t1="{end}"{spans}'
        f' style="--depth:{min(depth, 40)}">'
        f'<a class="step-head" href="?step={seq}">'
        f'<span class="seq">#{seq}</span><span class="kind">{_KIND_LABELS.get(step.kind, kind)}</span>'
        f'<span class="name">{escape(step.name)}</span>'
        f'<span class="summary-text">{escape(step_summary(step))}</span>'
        f'<span class="dur">{duration_text(step.duration_ms)}</span></a></li>'
    )


def _parent_seq(step: Step) -> int | None:
    """The parent's seq as stored, if it is a whole number (stored data from outside
    may hold anything)."""
    meta = step.metadata if isinstance(step.metadata, dict) else {}
    parent = meta.get("parent_seq")
    return parent if isinstance(parent, int) and not isinstance(parent, bool) else None


def step_depths(steps: list[Step], known: dict[int, int] | None = None) -> dict[int, int]:
    """Depth of each step (by seq): its stored depth, else its parent's plus one.
    ``known`` holds depths of steps outside ``steps`` (earlier pages)."""
    depths = dict(known or {})
    for step in steps:
        meta = step.metadata if isinstance(step.metadata, dict) else {}
        if isinstance(meta.get("depth"), int):
            depths[step.seq] = meta["depth"]
            continue
        parent = _parent_seq(step)
        depths[step.seq] = depths.get(parent, -1) + 1 if parent is not None else 0
    return depths


def tree_html(
    steps: Iterable[Step], *, selected_seq: int | None = None, depths: dict[int, int] | None = None
) -> str:
    """The rows of ``steps`` (in seq order), each indented by its depth."""
    steps = list(steps)
    if not steps:
        return ""
    depths = step_depths(steps, depths)
    return "".join(step_node_html(s, depth=depths[s.seq], selected_seq=selected_seq) for s in steps)


def _stored_depth(step: Step) -> int:
    meta = step.metadata if isinstance(step.metadata, dict) else {}
    return meta["depth"] if isinstance(meta.get("depth"), int) else 0


def step_weight(step: Step) -> int:
    """About how many characters a step's row takes (its summary is capped at 140)."""
    return 500 + len(step.name) + min(len(step.error), 140)


def steps_append_html(steps: list[Step], *, new: bool = False) -> str:
    """Several rows appended at once (one out-of-band swap, one cursor): how catch-up
    frames carry up to hundreds of steps without a swap per step."""
    if not steps:
        return ""
    rows = "".join(step_node_html(s, depth=_stored_depth(s), new=new) for s in steps)
    return (
        f'<div hx-swap-oob="beforeend:#steps">{rows}</div>'
        f'<span id="trace-cursor" hx-swap-oob="true" data-cursor="{steps[-1].seq}" hidden></span>'
    )


def step_live_html(step: Step, *, new: bool = True) -> str:
    """A step as the live page appends it: a row at the end of the list and the new
    cursor (htmx out-of-band swaps). ``new`` rows flash once (not catch-up rows)."""
    meta = step.metadata if isinstance(step.metadata, dict) else {}
    depth = meta.get("depth") if isinstance(meta.get("depth"), int) else 0
    return (
        f'<div hx-swap-oob="beforeend:#steps">{step_node_html(step, depth=depth, new=new)}</div>'
        f'<span id="trace-cursor" hx-swap-oob="true" data-cursor="{step.seq}" hidden></span>'
    )


def totals_oob_html(
    *,
    step_count: int,
    prompt_tokens: int,
    completion_tokens: int,
    duration_ms: float | None,
    model_calls: int = 0,
    tool_calls: int = 0,
    error_count: int = 0,
) -> str:
    """The trace summary's running totals, swapped in place as each step lands."""
    return (
        f'<dd id="summary-duration" hx-swap-oob="true">{duration_text(duration_ms)}</dd>'
        f'<dd id="summary-steps" data-testid="step-count" hx-swap-oob="true">{step_count}</dd>'
        f'<dd id="summary-model-calls" hx-swap-oob="true">{model_calls}</dd>'
        f'<dd id="summary-tool-calls" hx-swap-oob="true">{tool_calls}</dd>'
        f'<dd id="summary-errors" hx-swap-oob="true">{error_count}</dd>'
        f'<dd id="summary-tokens" hx-swap-oob="true">{prompt_tokens} in · {completion_tokens} out</dd>'
    )


# --- events, rendered for the page (the htmx ws extension swaps them in) ---------------


def _parse_time(value):
    from datetime import datetime

    return datetime.fromisoformat(value) if isinstance(value, str) else None


def step_from_payload(payload: dict) -> Step:
    """An unsaved Step built from its JSON form, so events render with the same code as
    saved steps. Every field is coerced: the payload came over the channel layer."""
    step = Step(
        trace_id=payload.get("trace_id"),
        seq=int(payload["seq"]),
        kind=str(payload.get("kind") or ""),
        name=str(payload.get("name") or ""),
        status=str(payload.get("status") or ""),
        input=payload.get("input"),
        output=payload.get("output"),
        error=str(payload.get("error") or ""),
        tool_call_id=str(payload.get("tool_call_id") or ""),
        span_id=str(payload.get("span_id") or ""),
        parent_span_id=str(payload.get("parent_span_id") or ""),
        started_at=_parse_time(payload.get("started_at")),
        ended_at=_parse_time(payload.get("ended_at")),
        prompt_tokens=int(payload.get("prompt_tokens") or 0),
        completion_tokens=int(payload.get("completion_tokens") or 0),
    )
    parent_seq = payload.get("parent_seq")
    ok = isinstance(parent_seq, int) and not isinstance(parent_seq, bool)
    step.metadata = {"parent_seq": parent_seq} if ok else {}
    if isinstance(payload.get("depth"), int):
        step.metadata["depth"] = payload["depth"]
    return step


def trace_from_payload(payload: dict):
    """An unsaved Trace built from its JSON form (a trace event's ``data``), coerced
    field by field, for the status badge, the summary and the list row."""
    from .models import Trace

    trace = Trace(
        id=uuid.UUID(str(payload["id"])),
        name=str(payload.get("name") or ""),
        agent_slug=str(payload.get("agent_slug") or ""),
        status=str(payload.get("status") or ""),
        input=str(payload.get("input") or ""),
        output=str(payload.get("output") or ""),
        error=str(payload.get("error") or ""),
        step_count=int(payload.get("step_count") or 0),
        prompt_tokens=int(payload.get("prompt_tokens") or 0),
        completion_tokens=int(payload.get("completion_tokens") or 0),
        model_calls=int(payload.get("model_calls") or 0),
        tool_calls=int(payload.get("tool_calls") or 0),
        error_count=int(payload.get("error_count") or 0),
        cancel_requested=bool(payload.get("cancel_requested")),
        started_at=_parse_time(payload.get("started_at")),
        ended_at=_parse_time(payload.get("ended_at")),
    )
    forked = payload.get("forked_from")
    trace.forked_from_id = uuid.UUID(str(forked)) if forked else None
    trace.fork_seq = int(payload["fork_seq"]) if payload.get("fork_seq") is not None else None
    trace.created_at = _parse_time(payload.get("created_at"))
    price = payload.get("price")
    trace.metadata = {"price": price} if isinstance(price, dict) else {}
    return trace


def _number(value) -> int:
    return int(value or 0)


def step_event_html(event: dict) -> str:
    totals = event.get("totals") or {}
    duration = totals.get("duration_ms")
    ended = event.get("ended_call")
    return (
        step_live_html(step_from_payload(event["step"]))
        + (call_ended_html({"call": {"id": ended}}) if isinstance(ended, str) else "")
        + totals_oob_html(
            step_count=_number(totals.get("step_count")),
            prompt_tokens=_number(totals.get("prompt_tokens")),
            completion_tokens=_number(totals.get("completion_tokens")),
            duration_ms=float(duration) if duration is not None else None,
            model_calls=_number(totals.get("model_calls")),
            tool_calls=_number(totals.get("tool_calls")),
            error_count=_number(totals.get("error_count")),
        )
    )


def _call_dom_id(call: dict) -> str:
    return "call-" + "".join(c for c in str(call.get("id", "")) if c.isalnum() or c in "-_")[:64]


def call_started_html(event: dict) -> str:
    """A running model or tool call: a row with a ticking duration (static/js/trace.js
    ticks every ``[data-running-since]``) below the saved steps."""
    call = event.get("call") or {}
    parent = call.get("parent_seq")
    parent = int(parent) if parent is not None else ""
    kind = "model_call" if call.get("kind") == "model" else "tool_call"
    started = float(call.get("started_at") or 0)
    # The same call may be announced twice (in a reconnect's catch-up and live): the row
    # is removed first, so it never shows twice.
    return (
        f'<div id="{_call_dom_id(call)}" hx-swap-oob="delete"></div>'
        f'<div hx-swap-oob="beforeend:#running-calls"><li class="step running kind-{kind}"'
        f' id="{_call_dom_id(call)}" data-parent="{parent}" data-testid="running-call">'
        f'<span class="step-head"><span class="seq">…</span>'
        f'<span class="kind">{_KIND_LABELS[kind]}</span>'
        f'<span class="name">{escape(str(call.get("name") or ""))}</span>'
        f'<span class="summary-text">running</span>'
        f'<span class="dur" data-running-since="{started * 1000:.0f}">running</span></span>'
        f"</li></div>"
    )


def call_ended_html(event: dict) -> str:
    return f'<div id="{_call_dom_id(event.get("call") or {})}" hx-swap-oob="delete"></div>'


# Event type → its HTML for the trace page. Trace events are rendered from the database
# (traces.fanout), not from here.
EVENT_HTML = {
    "step": step_event_html,
    "call.started": call_started_html,
    "call.ended": call_ended_html,
}
