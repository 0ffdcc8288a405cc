"""SFT: TRL's conversational format with tools, ``{"messages", "tools", "trace_id"}``.

Only traces judged good are taken whole. A trace with a corrected tool call is taken
up to that call: the corrected call replaces the bad one and the conversation ends
there. Anything else (judged bad, or a bad step nobody corrected) is left out.
"""

from __future__ import annotations

from typing import Any

from .conversation import conversation, corrected_reply, corrections_by_reply, tools_of
from .records import TraceRecord


def judged_good(trace: TraceRecord) -> bool:
    """Good as a whole: its own verdict is good, or (none given) its steps have labels
    and none of them is bad."""
    if trace.label is not None:
        return trace.label.verdict == "good"
    verdicts = [s.label.verdict for s in trace.steps if s.label]
    return bool(verdicts) and "bad" not in verdicts


def sft_rows(traces: list[TraceRecord]) -> list[dict[str, Any]]:
    rows = []
    for trace in traces:
        messages, replies = conversation(trace)
        corrections = corrections_by_reply(trace)
        fixable = [seq for seq in sorted(corrections) if seq in replies]
        if fixable:
            seq = fixable[0]
            index = replies[seq]
            messages = messages[:index] + [corrected_reply(messages[index], corrections[seq])]
        elif not judged_good(trace) or not messages:
            continue
        rows.append({"messages": messages, "tools": tools_of(trace), "trace_id": trace.trace_id})
    return rows


class SftExporter:
    name = "sft"
    columns = {"messages": "json_list", "tools": "json_list", "trace_id": "string"}
    rows = staticmethod(sft_rows)
