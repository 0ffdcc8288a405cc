"""Model-merge engine: mergekit-compatible configs, streaming, bounded memory.

Each merge method is one module of ``methods`` (its spec and its tensor code),
found by ``registry``; ``safetensors_io`` reads and writes weights; ``driver``
checks a merge and runs it. Nothing here imports Django.

Importing the package loads only its errors; the rest (and with it torch) loads when
first used. The web server and the agent workers import the job views and services
that name these; with torch loaded, a worker child was 330 MB instead of 145 MB, and
forking it for each tool call (toolsapp.processes) took 11.6 ms instead of 4.4 ms.
"""

from importlib import import_module

from .errors import MergeCancelled, MergeError

_LAZY = {
    "MergeConfig": ".config",
    "config_load": ".config",
    "config_parse": ".config",
    "DEFAULT_SHARD_SIZE": ".driver",
    "MergeProgress": ".driver",
    "MergeResult": ".driver",
    "merge_check": ".driver",
    "merge_run": ".driver",
}

__all__ = [
    "DEFAULT_SHARD_SIZE",
    "MergeCancelled",
    "MergeConfig",
    "MergeError",
    "MergeProgress",
    "MergeResult",
    "config_load",
    "config_parse",
    "merge_check",
    "merge_run",
]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
