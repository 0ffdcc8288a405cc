"""DFSDT (ToolLLM): depth-first search over a decision tree of tool calls.

Each node is a model reply; its calls run. If any of them fails (an error step: unknown
tool, bad arguments, a tool error), the branch is abandoned: the search backs up to the
node's parent and asks for a different move, telling the model what failed, up to
``config["width"]`` tries per node (default 2). A reply without calls is a final answer
and ends the search. Every node's model call is recorded under its parent node's call
(``metadata.branch`` like ``0.1.0``), so the debugger shows the tree with its dead ends.
The total number of model calls is capped by the agent's ``max_steps``.
"""

from __future__ import annotations

import json
from typing import Any

from traces.models import Step, Trace

from .base import Conversation, ModelCallFailed, Outcome
from .function_calling import FunctionCallingLoop


class _Exhausted(Exception):
    pass


class DfsdtSearch(FunctionCallingLoop):
    label = "DFSDT tree search (ToolLLM)"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.width = max(1, int(self.config.get("width", 2)))
        self.budget = self.max_steps

    def run(self, user_input: str, *, history: list[dict[str, Any]] | None = None) -> Outcome:
        try:
            found = self._expand(self._first_messages(user_input, history), None, "0")
        except ModelCallFailed as exc:
            return Outcome(Trace.Status.FAILED, error=f"model call failed: {exc}")
        except _Exhausted:
            found = None
        if found is None:
            reason = (
                f"every branch failed within {self.max_steps} model calls"
                if self.budget <= 0
                else "every branch of the search failed"
            )
            return Outcome(Trace.Status.FAILED, error=f"DFSDT: {reason}")
        return Outcome(Trace.Status.SUCCEEDED, output=found)

    def _expand(self, messages: list[dict[str, Any]], parent: Step | None, path: str) -> str | None:
        """Search below a node; return the final answer, or None when every child failed."""
        failures: list[str] = []
        for attempt in range(self.width):
            if self.budget <= 0:
                raise _Exhausted()
            self._check_cancel()
            self.budget -= 1
            branch = f"{path}.{attempt}" if parent is not None else str(attempt)
            tried = list(messages)
            if failures:
                tried.append(
                    {
                        "role": "user",
                        "content": "Earlier attempts at this step failed:\n"
                        + "\n".join(failures)
                        + "\nTry a different approach.",
                    }
                )
            node = Conversation(
                trace_id=self.trace_id, backend=self.backend, messages=tried, chained=False
            )
            reply, model_step = node.ask(
                tool_specs=self.tool_specs, parent=parent, metadata={"branch": branch}
            )
            if not reply.tool_calls:
                return self._answer(reply.content, model_step).output
            errors_before = self._error_count()
            for call in reply.tool_calls:
                self._check_cancel()
                node.messages.append(
                    {
                        "role": "tool",
                        "tool_call_id": call.id,
                        "content": self._run_call(call, model_step),
                    }
                )
            if self._error_count() > errors_before:
                calls = json.dumps(
                    [{"name": c.name, "arguments": c.arguments} for c in reply.tool_calls]
                )
                results = [m["content"][:300] for m in node.messages[len(tried) + 1 :]]
                failures.append(f"- {calls} → {results}")
                continue  # back up: try a sibling
            answer = self._expand(node.messages, model_step, branch)
            if answer is not None:
                return answer
            failures.append(f"- {reply.tool_calls[0].name}…: everything after it failed")
        return None

    def _error_count(self) -> int:
        return Step.objects.filter(trace_id=self.trace_id, kind=Step.Kind.ERROR).count()
