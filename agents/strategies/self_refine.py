"""Function-calling loop with self-refinement (ToolACE-R): before a reply's calls run, the
model checks them against the request and the tools' schemas and may revise them. The
refinement is adaptive: it stops as soon as a round leaves the calls unchanged (or after
``config["max_rounds"]`` rounds, default 2). Each round is its own ``refine`` model call
under the call it checks, so the debugger shows what changed."""

from __future__ import annotations

from agents.llm import ModelReply
from traces.models import Step

from .base import Conversation, calls_key
from .function_calling import FunctionCallingLoop

REVIEW = (
    "Check the tool calls you just proposed against the user's request and each tool's "
    "parameter schema (names, required arguments, types, values). If they are right, call "
    "exactly the same tools with the same arguments again. If not, call the corrected tools."
)


class SelfRefineLoop(FunctionCallingLoop):
    label = "Function calling + self-refinement (ToolACE-R)"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.max_rounds = int(self.config.get("max_rounds", 2))

    def _revise(
        self, conversation: Conversation, reply: ModelReply, model_step: Step
    ) -> ModelReply:
        if not reply.tool_calls:
            return reply
        current = reply
        for round_number in range(1, self.max_rounds + 1):
            self._check_cancel()
            review = Conversation(
                trace_id=self.trace_id,
                backend=self.backend,
                messages=[*conversation.messages, {"role": "user", "content": REVIEW}],
                role="refine",
                chained=False,
            )
            revised, _ = review.ask(
                tool_specs=self.tool_specs,
                parent=model_step,
                metadata={"refine_round": round_number},
            )
            if not revised.tool_calls or calls_key(revised) == calls_key(current):
                break  # stable (or the model withdrew nothing useful): keep what we have
            current = revised
        if current is not reply:
            # The conversation goes on with the refined calls in place of the first ones.
            conversation.messages[-1] = current.as_message()
            current.content = current.content or reply.content
        return current
