"""Errors every executor raises."""


class ToolExecutionError(Exception):
    """The tool ran and failed, or could not be run."""


class ToolTimeout(ToolExecutionError):
    """The tool overran its deadline and was stopped."""


class ToolCancelled(ToolExecutionError):
    """The run was cancelled while the tool was running; the call was stopped."""
