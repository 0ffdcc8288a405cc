"""A real backend that plays a recorded list of replies: for tests, demos and benchmarks.

``endpoint.config["script"]`` is a list of replies, each a dict::

    {"content": "text", "tool_calls": [{"name": "calculator", "arguments": {"expression": "2+2"}}],
     "delay_ms": 50, "prompt_tokens": 12, "completion_tokens": 7}

``arguments`` may be an object (sent as its JSON text) or a string sent as it is, so a
script can replay a model that wrote broken JSON. Reply *n* answers the *n*-th model
call of the run; when the script runs out the backend raises ModelError.

``endpoint.config["script_by_input"]`` maps a run's last user message to its own list of
replies (a recording of a model on a dataset): a run whose question is not in it gets
``config["script"]`` when there is one, else a ModelError naming the question.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from .base import ModelCancelled, ModelError, ModelReply, ToolCallRequest


class ScriptedBackend:
    def __init__(self, endpoint) -> None:
        config = endpoint.config or {}
        script = config.get("script")
        self.by_input = config.get("script_by_input")
        if not isinstance(script, list) and not isinstance(self.by_input, dict):
            raise ModelError(
                f"scripted endpoint {endpoint.name!r} needs config.script, a list of replies"
            )
        self.script = script if isinstance(script, list) else None
        self.turn = 0

    def complete(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        *,
        cancel: threading.Event | None = None,
    ) -> ModelReply:
        if self.turn == 0 and self.by_input is not None:
            question = next(
                (m.get("content") for m in reversed(messages) if m.get("role") == "user"), ""
            )
            recorded = self.by_input.get(str(question))
            if isinstance(recorded, list):
                self.script = recorded
            elif self.script is None:
                raise ModelError(
                    f"the script has no replies for the question {str(question)[:200]!r}"
                )
        if self.turn >= len(self.script):
            raise ModelError(
                f"the script has only {len(self.script)} replies; the run asked for more"
            )
        entry = self.script[self.turn]
        self.turn += 1
        # Waits like a slow model, and like one that can be interrupted.
        if entry.get("delay_ms") and (cancel or threading.Event()).wait(entry["delay_ms"] / 1000):
            raise ModelCancelled("the model call was cancelled")
        calls = []
        for index, call in enumerate(entry.get("tool_calls") or []):
            arguments = call.get("arguments", {})
            if not isinstance(arguments, str):
                arguments = json.dumps(arguments)
            calls.append(
                ToolCallRequest(
                    id=call.get("id") or f"call_{self.turn}_{index}",
                    name=call["name"],
                    arguments=arguments,
                )
            )
        return ModelReply(
            content=entry.get("content", ""),
            tool_calls=calls,
            prompt_tokens=int(entry.get("prompt_tokens", 0)),
            completion_tokens=int(entry.get("completion_tokens", 0)),
            model="scripted",
            finish_reason="tool_calls" if calls else "stop",
        )
