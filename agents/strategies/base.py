"""What every strategy shares: recorded conversations with a model, and the outcome."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from agents.llm import ModelBackend, ModelError, ModelReply
from traces.models import Step
from traces.services import call_ended, call_started, step_record


class RunCancelled(Exception):
    """Someone asked the run to stop."""


@dataclass
class Outcome:
    status: str
    output: str = ""
    error: str = ""


class ModelCallFailed(ModelError):
    """A model call failed; its error step is already recorded."""


class Conversation:
    """One conversation with a model; every call is recorded as a ``model_call`` step.

    A ``chained`` conversation stores on each call only the messages added since its
    previous call (``traces.selectors.model_call_conversation`` joins them back by
    following ``earlier_from_step``), so a long run does not grow quadratically.
    """

    def __init__(
        self,
        *,
        trace_id,
        backend: ModelBackend,
        messages: list[dict[str, Any]],
        role: str = "",
        chained: bool = True,
    ) -> None:
        self.trace_id = trace_id
        self.backend = backend
        self.messages = messages
        self.role = role
        self.chained = chained
        self.sent = 0
        self.previous_seq: int | None = None

    def ask(
        self,
        *,
        tool_specs: list[dict[str, Any]],
        parent: Step | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> tuple[ModelReply, Step]:
        """Send the conversation, record the call, append the reply; raise ModelCallFailed
        (after recording an error step) when the model fails."""
        sent = self.sent if self.chained else 0
        new_input: dict[str, Any] = {
            "messages": self.messages[sent:],
            "earlier_messages": sent,
            "earlier_from_step": self.previous_seq if sent else None,
        }
        meta = {**(metadata or {}), **({"role": self.role} if self.role else {})}
        started = timezone.now()
        # Shown as running on the trace page until its step is saved (or it fails).
        call_id = call_started(
            trace_id=self.trace_id,
            kind="model",
            name=self.role or "model",
            parent_seq=parent.seq if parent is not None else None,
        )
        try:
            reply = self.backend.complete(self.messages, tool_specs)
        except ModelError as exc:
            call_ended(trace_id=self.trace_id, call_id=call_id)
            step_record(
                trace_id=self.trace_id,
                kind=Step.Kind.ERROR,
                name=f"{self.role}_model_error" if self.role else "model_error",
                input=new_input,
                error=str(exc),
                started_at=started,
                parent=parent,
                metadata=meta or None,
            )
            raise ModelCallFailed(str(exc)) from exc
        # The running row gives way to the step: one event for both.
        call_ended(trace_id=self.trace_id, call_id=call_id, announce=False)
        step = step_record(
            trace_id=self.trace_id,
            kind=Step.Kind.MODEL_CALL,
            name=self.role or reply.model or "model",
            input={**new_input, "tools": [t["function"]["name"] for t in tool_specs]},
            output=reply.as_output(),
            started_at=started,
            ended_at=timezone.now(),
            prompt_tokens=reply.prompt_tokens,
            completion_tokens=reply.completion_tokens,
            parent=parent,
            metadata=meta or None,
            ended_call=call_id,
        )
        self.sent, self.previous_seq = len(self.messages), step.seq
        self.messages.append(reply.as_message())
        return reply, step


def calls_key(reply: ModelReply) -> list[tuple[str, Any]]:
    """A reply's calls in a comparable form (arguments parsed where they are JSON)."""
    import json

    key = []
    for call in reply.tool_calls:
        try:
            arguments: Any = json.loads(call.arguments) if call.arguments else {}
        except (ValueError, TypeError):
            arguments = call.arguments
        key.append((call.name, json.dumps(arguments, sort_keys=True, default=str)))
    return sorted(key)
