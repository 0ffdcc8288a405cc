from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol


class ModelError(Exception):
    """The model endpoint failed or answered something unusable (HTTP error, timeout,
    a script that ran out). The run records it as an error step."""


class ModelCancelled(ModelError):
    """The call was given up because the run was asked to stop (its cancel event)."""


@dataclass
class ToolCallRequest:
    """One tool call the model proposed. ``arguments`` is the raw text the model sent:
    it may not be JSON at all, and the runner decides what to do about that."""

    id: str
    name: str
    arguments: str
    # Why the call cannot be run as sent (a null name, arguments of the wrong type, an
    # id too long to keep); the run records an error step and tells the model.
    problem: str = ""


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
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        *,
        cancel: threading.Event | None = None,
    ) -> ModelReply:
        """One chat completion. A backend that can be interrupted gives up within a
        second of ``cancel`` being set, raising ModelCancelled."""
        ...


class CallLimits:
    """The cancel event and overall deadline of one model call, for backends that
    generate in this process (llama.cpp, transformers) and check between tokens."""

    def __init__(self, cancel: threading.Event | None, deadline_seconds: float, what: str):
        self.cancel = cancel
        self.deadline_seconds = deadline_seconds
        self.ends_at = time.monotonic() + deadline_seconds
        self.what = what

    def passed(self) -> bool:
        """Whether the call must stop now (cancelled, or past its deadline)."""
        return (self.cancel is not None and self.cancel.is_set()) or (
            time.monotonic() > self.ends_at
        )

    def check(self) -> None:
        """Raise ModelCancelled or a deadline ModelError when the call must stop."""
        if self.cancel is not None and self.cancel.is_set():
            raise ModelCancelled("the model call was cancelled")
        if time.monotonic() > self.ends_at:
            raise ModelError(
                f"{self.what} gave no complete answer within the {self.deadline_seconds:g} s "
                "deadline of a model call"
            )


def deadline_from(config: dict[str, Any]) -> float:
    """An endpoint's overall deadline per model call (``config["deadline"]``, else the
    TOOLTRAIL_MODEL_DEADLINE_SECONDS setting)."""
    from django.conf import settings

    try:
        return float(config.get("deadline", settings.TOOLTRAIL_MODEL_DEADLINE_SECONDS))
    except (TypeError, ValueError) as exc:
        raise ModelError("config.deadline must be a number of seconds") from exc


MAX_CALL_ID = 100  # characters; what a step keeps
MAX_TOOL_NAME = 200
MAX_TOKENS_COUNT = 2**31 - 1


def _count(value: Any) -> int:
    """A token count as servers send it (int, float, numeric text), kept in range."""
    try:
        return min(max(int(value or 0), 0), MAX_TOKENS_COUNT)
    except (TypeError, ValueError, OverflowError):
        return 0


def _content_text(content: Any) -> str:
    """The message's text: a string, or the text parts of a list of content parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(
        isinstance(part, dict) and isinstance(part.get("text", ""), str) for part in content
    ):
        return "".join(part.get("text", "") for part in content)
    raise ModelError(
        f"the endpoint's message content is a {type(content).__name__}, not text: "
        f"{str(content)[:200]}"
    )


def _tool_call(call: Any, index: int, prefix: str) -> ToolCallRequest:
    """One proposed call, with a ``problem`` instead of a crash when it is malformed."""
    default_id = f"{prefix}_{index}"
    if not isinstance(call, dict):
        return ToolCallRequest(
            id=default_id, name="", arguments="", problem=f"tool call {index} is not an object"
        )
    problems = []
    call_id = call.get("id")
    if call_id is None or call_id == "":
        call_id = default_id
    elif not isinstance(call_id, str) or len(call_id) > MAX_CALL_ID:
        problems.append(f"its id is not a string of at most {MAX_CALL_ID} characters")
        call_id = default_id
    function = call.get("function")
    if not isinstance(function, dict):
        function = {}
        problems.append("it has no function object")
    name = function.get("name")
    if not isinstance(name, str) or not name or len(name) > MAX_TOOL_NAME:
        problems.append("its function name is missing or not a short string")
        name = name[:MAX_TOOL_NAME] if isinstance(name, str) else ""
    arguments = function.get("arguments", "")
    if arguments is None:
        arguments = ""
    elif isinstance(arguments, dict):
        # Some servers send an object instead of the JSON text the spec asks for.
        arguments = json.dumps(arguments)
    elif not isinstance(arguments, str):
        problems.append(f"its arguments are a {type(arguments).__name__}, not JSON text")
        arguments = ""
    return ToolCallRequest(id=call_id, name=name, arguments=arguments, problem="; ".join(problems))


def parse_openai_message(data: Any, *, default_id_prefix: str = "call") -> ModelReply:
    """Turn an OpenAI chat-completions response body into a ModelReply.

    Whatever the body holds, this returns a reply of the declared types or raises
    ModelError: malformed tool calls come back with a ``problem`` (the run records an
    error step for each and tells the model), never as an exception further on.
    """
    try:
        choice = data["choices"][0]
        message = choice["message"]
    except (KeyError, IndexError, TypeError) as exc:
        raise ModelError(
            f"the endpoint's answer has no choices[0].message: {str(data)[:300]}"
        ) from exc
    if not isinstance(message, dict):
        raise ModelError(
            f"the endpoint's choices[0].message is not an object: {str(message)[:300]}"
        )
    raw_calls = message.get("tool_calls") or []
    if not isinstance(raw_calls, list):
        raise ModelError(f"the endpoint's tool_calls is not a list: {str(raw_calls)[:300]}")
    calls = [_tool_call(call, index, default_id_prefix) for index, call in enumerate(raw_calls)]
    usage = data.get("usage") if isinstance(data, dict) else None
    usage = usage if isinstance(usage, dict) else {}
    model = data.get("model") if isinstance(data, dict) else ""
    finish_reason = choice.get("finish_reason") if isinstance(choice, dict) else ""
    return ModelReply(
        content=_content_text(message.get("content")),
        tool_calls=calls,
        prompt_tokens=_count(usage.get("prompt_tokens")),
        completion_tokens=_count(usage.get("completion_tokens")),
        model=model[:200] if isinstance(model, str) else "",
        finish_reason=finish_reason[:50] if isinstance(finish_reason, str) else "",
    )
