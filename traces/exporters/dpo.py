"""DPO: TRL's conversational preference format, one row per corrected tool call:
``{"prompt": [messages before the reply], "chosen": [the reply with the corrected
call], "rejected": [the reply as the model gave it], "tools", "trace_id", "step_id"}``.
"""

from __future__ import annotations

from typing import Any

from .conversation import conversation, corrected_reply, corrections_by_reply, tools_of
from .records import TraceRecord


def dpo_rows(traces: list[TraceRecord]) -> list[dict[str, Any]]:
    rows = []
    for trace in traces:
        messages, replies = conversation(trace)
        tools = tools_of(trace)
        for seq, corrections in sorted(corrections_by_reply(trace).items()):
            if seq not in replies:
                continue
            index = replies[seq]
            for step, call in corrections:
                chosen = corrected_reply(messages[index], [(step, call)])
                if chosen == messages[index]:
                    continue  # "corrected" to what it already was: no preference to learn
                rows.append(
                    {
                        "prompt": messages[:index],
                        "chosen": [chosen],
                        "rejected": [messages[index]],
                        "tools": tools,
                        "trace_id": trace.trace_id,
                        "step_id": step.id,
                    }
                )
    return rows


class DpoExporter:
    name = "dpo"
    columns = {
        "prompt": "json_list",
        "chosen": "json_list",
        "rejected": "json_list",
        "tools": "json_list",
        "trace_id": "string",
        "step_id": "int64",
    }
    rows = staticmethod(dpo_rows)
