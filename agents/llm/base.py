from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from agents.models import ModelEndpoint


class ModelError(Exception):
    """The model endpoint failed or answered something unusable (HTTP error, timeout,
    a script that ran out). The run records it as an error step."""


@dataclass
class ToolCallRequest:
    """One tool call the model proposed. ``arguments`` is the raw text the model sent:
    it may not be JSON at all, and the runner decides what to do about that."""

    id: str
    name: str
    arguments: str


@dataclass
class ModelReply:
    content: str = ""
    tool_calls: list[ToolCallRequest] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model: str = ""
    finish_reason: str = ""

    def as_message(self) -> dict[str, Any]:
        """The assistant message to append to the conversation (OpenAI format)."""
        message: dict[str, Any] = {"role": "assistant", "content": self.content or None}
        if self.tool_calls:
            message["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                }
                for c in self.tool_calls
            ]
        return message

    def as_output(self) -> dict[str, Any]:
        """What a model_call step stores as its output."""
        return {
            "content": self.content,
            "tool_calls": [
                {"id": c.id, "name": c.name, "arguments": c.arguments} for c in self.tool_calls
            ],
            "finish_reason": self.finish_reason,
            "model": self.model,
        }


class ModelBackend(Protocol):
    def complete(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]
    ) -> ModelReply: ...


def parse_openai_message(data: dict[str, Any], *, default_id_prefix: str = "call") -> ModelReply:
    """Turn an OpenAI chat-completions response body into a ModelReply."""
    try:
        choice = data["choices"][0]
        message = choice["message"]
    except (KeyError, IndexError, TypeError) as exc:
        raise ModelError(
            f"the endpoint's answer has no choices[0].message: {str(data)[:300]}"
        ) from exc
    calls = []
    for index, call in enumerate(message.get("tool_calls") or []):
        function = call.get("function") or {}
        arguments = function.get("arguments", "")
        if not isinstance(arguments, str):
            # Some servers send an object instead of the JSON text the spec asks for.
            import json

            arguments = json.dumps(arguments)
        calls.append(
            ToolCallRequest(
                id=call.get("id") or f"{default_id_prefix}_{index}",
                name=function.get("name", ""),
                arguments=arguments,
            )
        )
    usage = data.get("usage") or {}
    return ModelReply(
        content=message.get("content") or "",
        tool_calls=calls,
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        model=data.get("model", ""),
        finish_reason=choice.get("finish_reason") or "",
    )


def backend_for(endpoint: ModelEndpoint) -> ModelBackend:
    from .hf import HfBackend
    from .local import LocalBackend
    from .openai import OpenAIBackend
    from .scripted import ScriptedBackend

    kinds = {
        "openai": OpenAIBackend,
        "local": LocalBackend,
        "scripted": ScriptedBackend,
        "hf": HfBackend,
    }
    try:
        cls = kinds[endpoint.kind]
    except KeyError:
        raise ModelError(f"unknown endpoint kind {endpoint.kind!r}") from None
    return cls(endpoint)
