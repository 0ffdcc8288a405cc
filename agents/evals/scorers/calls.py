"""Scorers over the calls a run made, for items with expected calls in our own format
(``[{"name": ..., "arguments": {...}}]``), and the figures every item gets:

- ``exact_calls``: the same calls, names and arguments equal, in any order;
- ``tool_selection``: the same set of tool names (MetaTool's tool-selection accuracy);
- ``tool_use_decision``: a call was made exactly when one was expected (MetaTool's
  "should a tool be used at all"; SMART's irrelevance and tool overuse);
- ``hallucination``: calls to tools that were not offered, and arguments that the
  tool's schema does not have (ToolBeHonest's hallucination rates).
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from .bfcl_ast import Verdict


def _key(call: dict[str, Any]) -> str:
    return json.dumps([call.get("name"), call.get("arguments") or {}], sort_keys=True, default=str)


def exact_calls(*, calls: list[dict[str, Any]], expected: list[dict[str, Any]]) -> Verdict:
    got, want = Counter(map(_key, calls)), Counter(map(_key, expected))
    if got == want:
        return Verdict(True)
    missing = [json.loads(k) for k in (want - got).elements()]
    extra = [json.loads(k) for k in (got - want).elements()]
    reason = []
    if missing:
        reason.append(f"expected but not made: {missing}")
    if extra:
        reason.append(f"made but not expected: {extra}")
    return Verdict(False, "exact_calls:mismatch", ["; ".join(reason)])


def tool_selection(*, calls: list[dict[str, Any]], expected: list[dict[str, Any]]) -> bool:
    return {c.get("name") for c in calls} == {c.get("name") for c in expected}


def tool_use_decision(*, calls: list[dict[str, Any]], tool_expected: bool) -> bool:
    return bool(calls) == tool_expected


def hallucination(
    *, calls: list[dict[str, Any]], functions: list[dict[str, Any]]
) -> dict[str, int]:
    """Counts of calls naming an unknown tool and of arguments not in the tool's schema."""
    by_name = {f.get("name"): f for f in functions}
    tools = arguments = 0
    for call in calls:
        function = by_name.get(call.get("name"))
        if function is None:
            tools += 1
            continue
        properties = ((function.get("parameters") or {}).get("properties")) or {}
        arguments += sum(1 for a in (call.get("arguments") or {}) if a not in properties)
    return {"hallucinated_tools": tools, "hallucinated_arguments": arguments}
