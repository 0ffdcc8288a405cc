"""How tool calls are written in a chat for models whose chat template has no tool
support (SmolLM2's has none): the tools are listed in the system message and each call is
a ``<tool_call>{"name": …, "arguments": {…}}</tool_call>`` line (the Hermes convention,
which Qwen and many fine-tunes use). Fine-tuning writes conversations this way and the
``hf`` backend reads replies this way, so a model trained here calls tools the way it is
asked to. Templates that do support tools get the messages unchanged."""

from __future__ import annotations

import json
import re
from typing import Any

_CALL = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)


def template_supports_tools(chat_template: str | None) -> bool:
    return bool(chat_template) and "tool_calls" in chat_template and "tools" in chat_template


def tools_preamble(tools: list[dict[str, Any]]) -> str:
    lines = [
        "You may call these tools. To call one, answer with one line per call:",
        '<tool_call>{"name": "<tool name>", "arguments": {<arguments as JSON>}}</tool_call>',
        "Tools:",
    ]
    for tool in tools:
        function = tool.get("function", tool)
        lines.append(
            json.dumps(
                {
                    "name": function.get("name"),
                    "description": function.get("description", ""),
                    "parameters": function.get("parameters", {}),
                },
                sort_keys=True,
            )
        )
    return "\n".join(lines)


def _arguments(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def flatten_messages(
    messages: list[dict[str, Any]], tools: list[dict[str, Any]]
) -> list[dict[str, str]]:
    """Messages with tool calls and tool results written as plain text."""
    out: list[dict[str, str]] = []
    preamble = tools_preamble(tools) if tools else ""
    for message in messages:
        role = message.get("role", "user")
        content = message.get("content") or ""
        if not isinstance(content, str):
            content = json.dumps(content)
        if role == "assistant" and message.get("tool_calls"):
            calls = [
                "<tool_call>"
                + json.dumps(
                    {
                        "name": (c.get("function") or c).get("name"),
                        "arguments": _arguments((c.get("function") or c).get("arguments", {})),
                    },
                    sort_keys=True,
                )
                + "</tool_call>"
                for c in message["tool_calls"]
            ]
            content = "\n".join(([content] if content else []) + calls)
        if role == "tool":
            role, content = "user", f"<tool_response>{content}</tool_response>"
        out.append({"role": role, "content": content})
    if preamble:
        if out and out[0]["role"] == "system":
            out[0] = {"role": "system", "content": out[0]["content"] + "\n\n" + preamble}
        else:
            out.insert(0, {"role": "system", "content": preamble})
    return out


def parse_reply(text: str) -> tuple[str, list[tuple[str, str]]]:
    """(content without the calls, [(name, arguments JSON text)]) from a generated reply.
    A call whose JSON cannot be read is kept as text for the runner to report."""
    calls: list[tuple[str, str]] = []
    for block in _CALL.findall(text):
        try:
            data = json.loads(block)
            name = str(data.get("name", ""))
            arguments = data.get("arguments", {})
            calls.append((name, arguments if isinstance(arguments, str) else json.dumps(arguments)))
        except (ValueError, AttributeError):
            match = re.search(r'"name"\s*:\s*"([^"]+)"', block)
            calls.append((match.group(1) if match else "", block))
    content = _CALL.sub("", text).strip()
    return content, calls
