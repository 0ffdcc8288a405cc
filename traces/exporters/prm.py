"""PRM: TRL's stepwise-supervision format, one row per trace with labelled steps:
``{"prompt": the user's request, "completions": [one text per labelled step],
"labels": [true unless the step was judged bad], "trace_id"}``.

Neutral steps count as correct (true): they are not errors, which is what a process
reward model is taught to find.
"""

from __future__ import annotations

import json
from typing import Any

from .conversation import arguments_object
from .records import StepRecord, TraceRecord


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def step_text(step: StepRecord) -> str:
    """A step as one line (or a few) of text a reward model reads."""
    if step.kind == "model_call":
        out = step.output or {}
        lines = [out.get("content") or ""]
        for call in out.get("tool_calls") or []:
            lines.append(
                f"call {call.get('name', '')}({_json(arguments_object(call.get('arguments')))})"
            )
        return "\n".join(line for line in lines if line)
    if step.kind == "tool_call":
        return f"call {step.name}({_json(arguments_object(step.input))})"
    if step.kind == "tool_result":
        return f"{step.name} returned {_json(step.output)}"
    if step.kind == "error":
        return f"error in {step.name}: {step.error}"
    if step.kind == "final":
        return (step.output or {}).get("content") or ""
    return _json(step.output)


def prm_rows(traces: list[TraceRecord]) -> list[dict[str, Any]]:
    rows = []
    for trace in traces:
        labelled = [s for s in trace.steps if s.label is not None]
        if not labelled:
            continue
        rows.append(
            {
                "prompt": trace.input,
                "completions": [step_text(s) for s in labelled],
                "labels": [s.label.verdict != "bad" for s in labelled],
                "trace_id": trace.trace_id,
            }
        )
    return rows


class PrmExporter:
    name = "prm"
    columns = {
        "prompt": "string",
        "completions": "string_list",
        "labels": "bool_list",
        "trace_id": "string",
    }
    rows = staticmethod(prm_rows)
