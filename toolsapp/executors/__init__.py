"""Run a tool call. Each tool kind has one executor module in this package, registered in
``EXECUTORS`` by its kind; adding a kind touches one module and this table.

Every executor takes ``(tool, arguments, timeout)`` — the arguments already validated
against the tool's schema — and returns a JSON-able value, or raises ToolExecutionError
(ToolTimeout when it overran) with a message the model can read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .base import ToolExecutionError, ToolTimeout

if TYPE_CHECKING:
    from toolsapp.models import Tool

Executor = Callable[["Tool", dict[str, Any], float], Any]

__all__ = ["EXECUTORS", "Executor", "ToolExecutionError", "ToolTimeout", "executor_for"]


def _registry() -> dict[str, Executor]:
    from . import http, python

    return {"python": python.execute, "http": http.execute}


EXECUTORS: dict[str, Executor] = _registry()


def executor_for(kind: str) -> Executor | None:
    return EXECUTORS.get(kind)
