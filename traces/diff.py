"""Diff of two traces: their tool calls aligned in order, differences marked.

Pure functions over lists of calls (``traces.selectors.trace_tool_calls`` reads them):
calls are aligned by the sequence of tool names (difflib's longest matching blocks), so
an extra or missing call shows as a gap rather than shifting every later pair.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ToolCall:
    seq: int
    name: str
    arguments: Any
    result: Any = None
    error: str = ""


@dataclass
class DiffRow:
    a: ToolCall | None
    b: ToolCall | None
    differs: list[str] = field(default_factory=list)  # "name", "arguments", "result"

    @property
    def kind(self) -> str:
        if self.a is None:
            return "only-b"
        if self.b is None:
            return "only-a"
        return "changed" if self.differs else "same"


def _canonical(value: Any) -> str:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return value
    return json.dumps(value, sort_keys=True, default=str)


def _compare(a: ToolCall, b: ToolCall) -> list[str]:
    differs = []
    if a.name != b.name:
        differs.append("name")
    if _canonical(a.arguments) != _canonical(b.arguments):
        differs.append("arguments")
    if _canonical(a.result) != _canonical(b.result) or a.error != b.error:
        differs.append("result")
    return differs


def tool_calls_diff(a: list[ToolCall], b: list[ToolCall]) -> list[DiffRow]:
    """Rows pairing the calls of ``a`` and ``b``; unmatched calls stand alone."""
    matcher = difflib.SequenceMatcher(a=[c.name for c in a], b=[c.name for c in b], autojunk=False)
    rows: list[DiffRow] = []
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op in ("equal", "replace"):
            pairs = list(zip(a[i1:i2], b[j1:j2], strict=False))
            rows.extend(DiffRow(x, y, _compare(x, y)) for x, y in pairs)
            rows.extend(DiffRow(x, None) for x in a[i1 + len(pairs) : i2])
            rows.extend(DiffRow(None, y) for y in b[j1 + len(pairs) : j2])
        elif op == "delete":
            rows.extend(DiffRow(x, None) for x in a[i1:i2])
        else:
            rows.extend(DiffRow(None, y) for y in b[j1:j2])
    return rows
