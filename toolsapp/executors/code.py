"""``code`` tools: a Python function's source (``config.source``, the function named by
``config.function``), run only in the sandbox (``toolsapp.sandbox``)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from .base import ToolExecutionError

if TYPE_CHECKING:
    from toolsapp.models import Tool


def execute(
    tool: Tool, arguments: dict[str, Any], timeout: float, cancel: threading.Event | None = None
) -> Any:
    from toolsapp.sandbox import sandbox_run

    config = tool.config or {}
    if not config.get("source") or not config.get("function"):
        raise ToolExecutionError(f"code tool {tool.name!r} has no config.source/config.function")
    return sandbox_run(
        source=config["source"],
        function=config["function"],
        arguments=arguments,
        timeout=timeout,
        cancel=cancel,
    )
