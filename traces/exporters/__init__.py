"""Training-data exporters: one module per format, each a pure function of
``TraceRecord``s returning rows; ``files`` writes them (JSONL, Parquet, split, card).
Adding a format is one module and one line here."""

from __future__ import annotations

from .dpo import DpoExporter
from .prm import PrmExporter
from .sft import SftExporter

EXPORTERS = {cls.name: cls for cls in (SftExporter, DpoExporter, PrmExporter)}
FORMATS = tuple(EXPORTERS)
