"""Rebuild the OpenAI-format conversation of a trace from its steps, with tool-call
arguments as objects (what TRL's chat templates take)."""

from __future__ import annotations

import json
from typing import Any

from .records import StepRecord, TraceRecord, canonical


def arguments_object(raw: Any) -> dict[str, Any]:
    """Tool-call arguments as an object; text that is not a JSON object is kept under
    ``_raw`` so a broken call stays visible rather than silently emptied."""
    if isinstance(raw, dict):
        return canonical(raw)
    if raw in (None, ""):
        return {}
    try:
        value = json.loads(raw)
    except (TypeError, ValueError):
        return {"_raw": str(raw)}
    return canonical(value) if isinstance(value, dict) else {"_raw": str(raw)}


def assistant_message(output: dict[str, Any] | None) -> dict[str, Any]:
    out = output or {}
    message: dict[str, Any] = {"role": "assistant", "content": out.get("content") or ""}
    calls = out.get("tool_calls") or []
    if calls:
        message["tool_calls"] = [
            {
                "id": call.get("id") or "",
                "type": "function",
                "function": {
                    "name": call.get("name", ""),
                    "arguments": arguments_object(call.get("arguments")),
                },
            }
            for call in calls
        ]
    return message


def plain_message(message: dict[str, Any]) -> dict[str, Any]:
    """A system, user or tool message with only the fields training needs."""
    out: dict[str, Any] = {"role": message.get("role", "user")}
    content = message.get("content")
    out["content"] = content if isinstance(content, str) else json.dumps(content, default=str)
    if out["role"] == "tool":
        out["tool_call_id"] = message.get("tool_call_id") or ""
    return out


def conversation(trace: TraceRecord) -> tuple[list[dict[str, Any]], dict[int, int]]:
    """The messages of the run, and where each model call's reply sits in them
    (model step seq → index of its assistant message).

    Our runner stores on each model call only the messages added since the previous
    one (``earlier_messages`` present); those are joined, with each reply taken from
    its model call's output. A model call without that key carries the whole
    conversation (other sources) and starts the list afresh.
    """
    messages: list[dict[str, Any]] = []
    replies: dict[int, int] = {}
    for step in trace.steps:
        if step.kind != "model_call":
            continue
        data = step.input if isinstance(step.input, dict) else {}
        new = data.get("messages") or []
        if "earlier_messages" not in data:
            messages, replies = [], {}
        for message in new:
            if isinstance(message, dict) and message.get("role") != "assistant":
                messages.append(plain_message(message))
        replies[step.seq] = len(messages)
        messages.append(assistant_message(step.output))
    return messages, replies


def corrected_reply(
    reply: dict[str, Any], corrections: list[tuple[StepRecord, dict[str, Any]]]
) -> dict[str, Any]:
    """``reply`` with each corrected tool call put in place of the original (matched by
    call id, else by the tool-call step's order under the model call)."""
    calls = [dict(c) for c in reply.get("tool_calls", [])]
    for position, (step, call) in enumerate(corrections):
        index = next(
            (i for i, c in enumerate(calls) if c["id"] and c["id"] == step.tool_call_id), None
        )
        if index is None:
            index = min(position, len(calls) - 1)
        if index < 0:
            continue
        calls[index] = {
            "id": calls[index]["id"],
            "type": "function",
            "function": {"name": call["name"], "arguments": call["arguments"]},
        }
    return {**reply, "tool_calls": calls}


def corrections_by_reply(trace: TraceRecord) -> dict[int, list[tuple[StepRecord, dict[str, Any]]]]:
    """Corrected tool calls grouped by the model call they belong to, in step order."""
    groups: dict[int, list[tuple[StepRecord, dict[str, Any]]]] = {}
    for step in trace.steps:
        label = step.label
        if step.kind == "tool_call" and label and label.corrected_call and step.parent_seq:
            groups.setdefault(step.parent_seq, []).append((step, label.corrected_call))
    return groups


def tools_of(trace: TraceRecord) -> list[dict[str, Any]]:
    """The tools of the trace (those it called, and those its corrected calls name) as
    OpenAI function specs with their recorded JSON Schemas, sorted by name."""
    return [
        {"type": "function", "function": {"name": name, "parameters": trace.tool_schemas[name]}}
        for name in sorted(trace.tool_schemas)
    ]
