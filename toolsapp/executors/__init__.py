"""Run a tool call. Each tool kind has one executor module in this package, registered in
``EXECUTORS`` by its kind; adding a kind touches one module and this table.

Every executor takes ``(tool, arguments, timeout, cancel)`` — the arguments already
validated against the tool's schema, ``cancel`` an optional ``threading.Event`` — and
returns a JSON-able value, or raises ToolExecutionError (ToolTimeout when it overran and
was stopped, ToolCancelled when ``cancel`` was set during the call) with a message the
model can read. Executors that run code run it in a killable child process
(``toolsapp.processes``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .base import ToolCancelled, ToolExecutionError, ToolTimeout

if TYPE_CHECKING:
    from toolsapp.models import Tool

Executor = Callable[["Tool", dict[str, Any], float, threading.Event | None], Any]

__all__ = [
    "EXECUTORS",
    "Executor",
    "ToolCancelled",
    "ToolExecutionError",
    "ToolTimeout",
    "executor_for",
]


def _registry() -> dict[str, Executor]:
    from . import code, http, mcp, python

    return {
        "python": python.execute,
        "http": http.execute,
        "code": code.execute,
        "mcp": mcp.execute,
    }


EXECUTORS: dict[str, Executor] = _registry()


def executor_for(kind: str) -> Executor | None:
    return EXECUTORS.get(kind)
