"""Strategies: how an agent turns model replies into tool calls and an answer."""

from .function_calling import FunctionCallingLoop, RunCancelled

STRATEGIES = {"function_calling": FunctionCallingLoop}

__all__ = ["STRATEGIES", "FunctionCallingLoop", "RunCancelled"]
