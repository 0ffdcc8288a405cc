"""``python`` tools: a function named by ``config.callable`` (``module:function``).

The function runs in a forked child process (``toolsapp.processes``), so a call that
overruns its timeout or is cancelled is killed, not abandoned: its CPU use and side
effects end with it.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

from .. import processes
from .base import ToolExecutionError

if TYPE_CHECKING:
    from toolsapp.models import Tool


def _resolve(path: str) -> Callable[..., Any]:
    module_name, _, attr = path.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ToolExecutionError(f"python tool target {path!r} cannot be imported: {exc}") from exc


def _detach_database_connections() -> None:
    """The child shares the parent's database sockets: forget them without closing them
    (closing would end the parent's session), so a tool that queries opens its own."""
    from django.db import connections

    for conn in connections.all(initialized_only=True):
        processes.KEEP_ALIVE.append(conn.connection)
        conn.connection = None


def _child(func: Callable[..., Any], arguments: dict[str, Any]) -> Callable[[int, int], NoReturn]:
    def run(out_fd: int, ctl_fd: int) -> NoReturn:
        _detach_database_connections()
        try:
            value = func(**arguments)
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            processes.child_reply(out_fd, error=f"{type(exc).__name__}: {exc}")
        processes.child_reply(out_fd, value=value)

    return run


def execute(
    tool: Tool, arguments: dict[str, Any], timeout: float, cancel: threading.Event | None = None
) -> Any:
    target = (tool.config or {}).get("callable")
    if not target:
        raise ToolExecutionError(f"python tool {tool.name!r} has no config.callable")
    func = _resolve(target)
    return processes.run_killable(child=_child(func, arguments), timeout=timeout, cancel=cancel)
