"""Planner → caller → summarizer (α-UMi): three roles, each its own model endpoint, so a
small model can play each one.

- the planner reads the conversation so far and the tools, and says the next step in
  words (``NEXT: …``) or that the work is done (``FINISH``);
- the caller turns that step into one tool call, which runs;
- the summarizer writes the final answer from everything gathered.

``config`` names the endpoints: ``{"planner": "<endpoint>", "caller": "<endpoint>",
"summarizer": "<endpoint>"}``; a role without one uses the agent's own endpoint. Each
role's model calls are recorded with its name.
"""

from __future__ import annotations

from typing import Any

from traces.models import Step, Trace

from .base import Conversation, ModelCallFailed, Outcome
from .function_calling import FunctionCallingLoop

PLANNER = (
    "You plan how to answer the user's request with these tools: {tools}. Given what was done "
    "so far, reply with one line: 'NEXT: <the next tool step, in words>' or 'FINISH' when "
    "enough is known to answer."
)
CALLER = "Make exactly one tool call that carries out this step: {step}"
SUMMARIZER = "Write the final answer to the user's request from the results gathered so far."


class PlannerCallerSummarizer(FunctionCallingLoop):
    label = "Planner → caller → summarizer (α-UMi)"
    roles = ("planner", "caller", "summarizer")

    def __init__(self, *, role_backends: dict[str, Any] | None = None, **kwargs) -> None:
        super().__init__(role_backends=role_backends, **kwargs)
        backends = role_backends or {}
        self.role_backend = {role: backends.get(role) or self.backend for role in self.roles}

    def run(self, user_input: str, *, history: list[dict[str, Any]] | None = None) -> Outcome:
        base = self._first_messages(user_input, history)
        tools = "; ".join(
            f"{t['function']['name']}: {t['function'].get('description', '')[:120]}"
            for t in self.tool_specs
        )
        done: list[dict[str, Any]] = []  # what the caller did and got back, as messages
        try:
            for _round in range(self.max_steps):
                self._check_cancel()
                plan, plan_step = self._ask(
                    "planner",
                    [*base, *done, {"role": "user", "content": PLANNER.format(tools=tools)}],
                )
                decision = (plan.content or "").strip()
                if decision.upper().startswith("FINISH") or not decision:
                    break
                step = decision.split(":", 1)[1].strip() if ":" in decision else decision
                self._check_cancel()
                call_reply, call_step = self._ask(
                    "caller",
                    [*base, *done, {"role": "user", "content": CALLER.format(step=step)}],
                    tool_specs=self.tool_specs,
                    parent=plan_step,
                )
                if not call_reply.tool_calls:
                    done.append({"role": "assistant", "content": f"(no call made for: {step})"})
                    continue
                call = call_reply.tool_calls[0]
                result = self._run_call(call, call_step)
                done += [
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": call.id,
                                "type": "function",
                                "function": {"name": call.name, "arguments": call.arguments},
                            }
                        ],
                    },
                    {"role": "tool", "tool_call_id": call.id, "content": result},
                ]
            else:
                return Outcome(
                    Trace.Status.FAILED,
                    error=f"the planner did not finish within {self.max_steps} rounds",
                )
            self._check_cancel()
            answer, answer_step = self._ask(
                "summarizer", [*base, *done, {"role": "user", "content": SUMMARIZER}]
            )
        except ModelCallFailed as exc:
            return Outcome(Trace.Status.FAILED, error=f"model call failed: {exc}")
        return self._answer(answer.content, answer_step)

    def _ask(
        self,
        role: str,
        messages: list,
        *,
        tool_specs: list | None = None,
        parent: Step | None = None,
    ):
        conversation = Conversation(
            trace_id=self.trace_id,
            backend=self.role_backend[role],
            messages=messages,
            role=role,
            chained=False,
        )
        return conversation.ask(tool_specs=tool_specs or [], parent=parent)
