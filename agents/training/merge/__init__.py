"""Model-merge engine: mergekit-compatible configs, streaming, bounded memory.

Each merge method is one module of ``methods`` (its spec and its tensor code),
found by ``registry``; ``safetensors_io`` reads and writes weights; ``driver``
checks a merge and runs it. Nothing here imports Django.
"""

from .config import MergeConfig, config_load, config_parse
from .driver import DEFAULT_SHARD_SIZE, MergeProgress, MergeResult, merge_check, merge_run
from .errors import MergeCancelled, MergeError

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
