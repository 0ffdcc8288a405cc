"""``python`` tools: a function named by ``config.callable`` (``module:function``)."""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .base import ToolExecutionError, ToolTimeout

if TYPE_CHECKING:
    from toolsapp.models import Tool


def _resolve(path: str) -> Callable[..., Any]:
    module_name, _, attr = path.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ToolExecutionError(f"python tool target {path!r} cannot be imported: {exc}") from exc


def _call_with_timeout(func: Callable[..., Any], arguments: dict[str, Any], timeout: float) -> Any:
    """Run in a daemon thread and stop waiting after ``timeout``. A Python thread cannot
    be killed, so an overrunning call is abandoned (its result dropped); tools that must
    be stopped hard belong to the sandboxed ``code`` kind, which runs in a process."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = func(**arguments)
        except BaseException as exc:  # noqa: BLE001 - reported to the caller below
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True, name="tool-call")
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise ToolTimeout(f"the tool did not answer within {timeout:g} s")
    if "error" in box:
        exc = box["error"]
        raise ToolExecutionError(f"{type(exc).__name__}: {exc}") from exc
    return box.get("value")


def execute(tool: Tool, arguments: dict[str, Any], timeout: float) -> Any:
    target = (tool.config or {}).get("callable")
    if not target:
        raise ToolExecutionError(f"python tool {tool.name!r} has no config.callable")
    return _call_with_timeout(_resolve(target), arguments, timeout)
