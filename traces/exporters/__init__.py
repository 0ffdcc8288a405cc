"""Training-data exporters: one module per format, each a pure function of
``TraceRecord``s returning rows, with its ``columns`` (name → kind: ``json_list``
for messages and tool specs, whose objects differ row to row, ``string``, ``int64``,
``string_list``, ``bool_list``); ``files`` writes them (JSONL, Parquet, split, card).
Adding a format is one module and one line here."""

from __future__ import annotations

from .dpo import DpoExporter
from .prm import PrmExporter
from .sft import SftExporter

EXPORTERS = {cls.name: cls for cls in (SftExporter, DpoExporter, PrmExporter)}
FORMATS = tuple(EXPORTERS)
