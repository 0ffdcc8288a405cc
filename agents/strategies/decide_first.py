"""Decide first (MetaTool / SMART): before offering any tool, ask the model whether the
request needs one. If not, it answers directly with no tools in sight (no tool overuse);
if so, the ordinary function-calling loop runs."""

from __future__ import annotations

from typing import Any

from traces.models import Trace

from .base import Conversation, ModelCallFailed, Outcome
from .function_calling import FunctionCallingLoop

QUESTION = (
    "Before answering, decide: does the request above need one of these tools? "
    "Tools: {tools}. Reply with exactly one word: yes or no."
)


class DecideFirstLoop(FunctionCallingLoop):
    label = "Decide first, then function calling (MetaTool/SMART)"

    def run(self, user_input: str, *, history: list[dict[str, Any]] | None = None) -> Outcome:
        messages = self._first_messages(user_input, history)
        if not self.tool_specs:
            return super().run(user_input, history=history)
        tools = "; ".join(
            f"{t['function']['name']}: {t['function'].get('description', '')[:120]}"
            for t in self.tool_specs
        )
        decide = Conversation(
            trace_id=self.trace_id,
            backend=self.backend,
            messages=[*messages, {"role": "user", "content": QUESTION.format(tools=tools)}],
            role="decide",
            chained=False,
        )
        try:
            self._check_cancel()
            verdict, decide_step = decide.ask(tool_specs=[])
        except ModelCallFailed as exc:
            return Outcome(Trace.Status.FAILED, error=f"model call failed: {exc}")
        if verdict.content.strip().lower().startswith("no") and not verdict.tool_calls:
            direct = Conversation(
                trace_id=self.trace_id,
                backend=self.backend,
                messages=messages,
                role="answer",
                chained=False,
            )
            try:
                self._check_cancel()
                reply, step = direct.ask(tool_specs=[], parent=decide_step)
            except ModelCallFailed as exc:
                return Outcome(Trace.Status.FAILED, error=f"model call failed: {exc}")
            return self._answer(reply.content, step)
        return super().run(user_input, history=history)
