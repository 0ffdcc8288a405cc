"""The process's index of the ``Tool`` table, kept in step and persisted.

Every write to a tool adds a ``ToolIndexChange`` row in the writer's transaction. Before
each search the store reads the rows after the last one it applied (one indexed query)
and re-indexes just those tools — embedding only text it has not seen. The index is
saved under ``var/`` (``TOOLTRAIL_TOOL_INDEX_PATH``) with the change it is current to, so
a restarted process loads it and applies only what changed since; a process that finds
a newer file saved by another process adopts it instead of embedding the same tools
again.

When the change log cannot say what changed — no saved index, the last-seen change is
gone (pruned, or rolled back with the database), or very many changes — the store
reconciles with the whole table: it reads every tool, but still embeds only new text.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from django.conf import settings

from ..models import Tool, ToolIndexChange
from . import encoder
from .index import IndexedTool, ToolIndex
from .text import identifier_words, tool_document

logger = logging.getLogger(__name__)

# More pending changes than this and one pass over the table is cheaper than the log.
MAX_CHANGES_APPLIED = 5_000
# A busy registry changes tools often; the saved file (tens of MB at 50,000 tools) is
# rewritten at most this often. What is not yet saved is replayed from the log.
SAVE_INTERVAL_SECONDS = 10.0


def tool_text(tool: Tool | dict) -> str:
    """What the index reads of a tool (a ``Tool`` or a values() dict)."""
    get = tool.get if isinstance(tool, dict) else lambda key: getattr(tool, key)
    # "openapi:stripe" -> "stripe": the source's name is part of what a tool is called.
    source = identifier_words(str(get("source") or "").partition(":")[2])
    name = str(get("name"))
    return tool_document(
        name=f"{name} {source}" if source else name,
        description=str(get("description") or ""),
        parameters=get("parameters"),
    )


_FIELDS = ("id", "name", "source", "description", "parameters")


def _indexed(rows) -> list[IndexedTool]:
    return [IndexedTool(key=row["id"], text=tool_text(row)) for row in rows]


class ToolIndexStore:
    def __init__(
        self, path: Path, *, embed: Callable[[list[str]], np.ndarray] = encoder.embed
    ) -> None:
        self.path = path
        self.embed = embed
        self.index: ToolIndex | None = None
        self.watermark: list | None = None  # [change id, created_at iso] last applied
        self._file_mtime: int | None = None
        self._saved_at = 0.0
        self._unsaved = False
        self._lock = threading.Lock()

    # The watermark is stored as the change's id and its timestamp: an id alone could
    # be handed out again after a rollback (SQLite reuses them), a timestamp cannot.
    @staticmethod
    def _mark(change_id: int, created_at) -> list:
        return [change_id, created_at.isoformat()]

    def _load_file(self) -> bool:
        """Adopt the saved index if it is newer than what this process has."""
        try:
            mtime = os.stat(self.path).st_mtime_ns
        except OSError:
            return False
        if mtime == self._file_mtime:
            return False
        self._file_mtime = mtime
        loaded = ToolIndex.load(self.path, embed=self.embed)
        if loaded is None:
            return False
        theirs = loaded.meta.get("watermark")
        ours = self.watermark
        if self.index is not None and (theirs is None or (ours and ours[0] >= theirs[0])):
            return False
        self.index, self.watermark = loaded, theirs
        return True

    def _reconcile(self) -> None:
        """Index every tool of the table (only new text is embedded)."""
        latest = ToolIndexChange.objects.order_by("-id").values_list("id", "created_at").first()
        index = self.index or ToolIndex(embed=self.embed)
        rows = list(Tool.objects.values(*_FIELDS))
        index.upsert(_indexed(rows))
        index.remove(set(index.keys) - {row["id"] for row in rows})
        self.index = index
        self.watermark = self._mark(*latest) if latest else None
        self._unsaved = True
        logger.info("tool index reconciled with the table: %d tools", len(index))

    def _apply_changes(self) -> bool:
        """Apply the log after the watermark. False when the log cannot be trusted."""
        if self.watermark is None:
            return not ToolIndexChange.objects.exists()
        since, stamp = self.watermark
        changes = list(
            ToolIndexChange.objects.filter(id__gte=since)
            .order_by("id")
            .values_list("id", "created_at", "tool_id")[: MAX_CHANGES_APPLIED + 1]
        )
        if not changes or changes[0][0] != since or changes[0][1].isoformat() != stamp:
            return False
        if len(changes) > MAX_CHANGES_APPLIED:
            return False
        if len(changes) == 1:
            return True
        tool_ids = {tool_id for _, _, tool_id in changes[1:]}
        rows = list(Tool.objects.filter(id__in=tool_ids).values(*_FIELDS))
        self.index.upsert(_indexed(rows))
        self.index.remove(tool_ids - {row["id"] for row in rows})
        self.watermark = self._mark(changes[-1][0], changes[-1][1])
        self._unsaved = True
        return True

    def _save(self, *, force: bool = False) -> None:
        if not self._unsaved:
            return
        if not force and time.monotonic() - self._saved_at < SAVE_INTERVAL_SECONDS:
            return
        self.index.meta["watermark"] = self.watermark
        try:
            self.index.save(self.path)
            self._file_mtime = os.stat(self.path).st_mtime_ns
        except OSError:
            logger.exception("could not save the tool index to %s", self.path)
            return
        self._saved_at, self._unsaved = time.monotonic(), False

    def sync(self) -> ToolIndex:
        """The index, current with every committed change to the tools."""
        with self._lock:
            self._load_file()
            if self.index is None or not self._apply_changes():
                first = self.index is None
                self._reconcile()
                self._save(force=first)
            else:
                self._save()
            self.index.prepare()
            return self.index

    def flush(self) -> None:
        """Save what is not saved yet (a command ending, a test)."""
        with self._lock:
            if self.index is not None:
                self._save(force=True)


_stores: dict[Path, ToolIndexStore] = {}
_stores_lock = threading.Lock()


def tool_index_store() -> ToolIndexStore:
    """The store of this process for ``settings.TOOLTRAIL_TOOL_INDEX_PATH``."""
    path = Path(settings.TOOLTRAIL_TOOL_INDEX_PATH)
    with _stores_lock:
        store = _stores.get(path)
        if store is None:
            store = _stores[path] = ToolIndexStore(path)
        return store


def tool_index() -> ToolIndex:
    """The tool index of this process, synced with the database."""
    return tool_index_store().sync()
