"""Merge methods, one module each (spec and tensor code together); see ``base``.

``registry`` imports every module of this package, so a new method is a new
module with a ``MergeMethod`` subclass that sets ``name``. The tensor kernels
are re-exported here for direct use.
"""

from .linear import linear
from .pcb import pcb
from .slerp import slerp
from .streaming import CHUNK_ELEMENTS, WORKERS, stream_select
from .task_arithmetic import generalized_task_arithmetic

__all__ = [
    "CHUNK_ELEMENTS",
    "WORKERS",
    "generalized_task_arithmetic",
    "linear",
    "pcb",
    "slerp",
    "stream_select",
]
