"""The glue between a model endpoint and ``toolsapp``'s tool maker (LATM): the maker is a
leaf service that takes ``complete(prompt) -> str``; this gives it any ModelEndpoint."""

from __future__ import annotations

from typing import Any

from toolsapp.codetools import CodeToolError, MadeTool, code_tool_make

from .llm import ModelError, backend_for
from .models import ModelEndpoint


def endpoint_completer(endpoint: ModelEndpoint):
    """``complete(prompt) -> reply text`` on one backend (a scripted one plays its
    replies in order across the maker's attempts)."""
    backend = backend_for(endpoint)

    def complete(prompt: str) -> str:
        try:
            reply = backend.complete([{"role": "user", "content": prompt}], [])
        except ModelError as exc:
            raise CodeToolError(f"the model failed: {exc}") from exc
        return reply.content or ""

    return complete


def tool_make(
    *,
    endpoint: ModelEndpoint,
    task: str,
    examples: list[dict[str, Any]],
    name: str = "",
    attempts: int = 2,
) -> MadeTool:
    """Have ``endpoint`` write a code tool for ``task``, tested on ``examples`` in the
    sandbox and saved as a draft for a person to approve."""
    return code_tool_make(
        task=task,
        examples=examples,
        complete=endpoint_completer(endpoint),
        name=name,
        attempts=attempts,
    )
