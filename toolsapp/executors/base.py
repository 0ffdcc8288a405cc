"""Errors every executor raises."""


class ToolExecutionError(Exception):
    """The tool ran and failed, or could not be run."""


class ToolTimeout(ToolExecutionError):
    pass
