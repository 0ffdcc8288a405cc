"""The one broadcast helper: send to a trace's channel group after the commit.

Group names come from one place (``trace_group``); Channels group names may hold
only letters, digits, ``-``, ``_`` and ``.``, so no colons.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import uuid
from typing import Any

from asgiref.sync import SyncToAsync, async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)

TRACE_LIST_GROUP = "traces.list"
SEND_TIMEOUT_SECONDS = 10.0

_loop_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_loop_pid = 0


def _sender_loop() -> asyncio.AbstractEventLoop:
    """This process's long-lived event loop for broadcasts from plain sync code.

    ``async_to_sync`` outside an event loop starts a new loop (and thread) per call, and
    the Redis channel layer keeps one connection per loop, so every step paid for a new
    loop, thread and Redis connection. One loop per process keeps the connection open.
    Made afresh after a fork (Celery's prefork children).
    """
    global _loop, _loop_pid
    with _loop_lock:
        if _loop is None or _loop_pid != os.getpid() or _loop.is_closed():
            _loop = asyncio.new_event_loop()
            _loop_pid = os.getpid()
            threading.Thread(
                target=_loop.run_forever, daemon=True, name="tooltrail-broadcast"
            ).start()
        return _loop


def _outer_loop_running() -> bool:
    """True in a sync thread that serves an event loop (a Django view under Daphne, a
    ``database_sync_to_async`` call): there ``async_to_sync`` reuses that loop."""
    loop = getattr(SyncToAsync.threadlocal, "main_event_loop", None)
    pid = getattr(SyncToAsync.threadlocal, "main_event_loop_pid", None)
    return loop is not None and pid == os.getpid() and loop.is_running()


def trace_group(trace_id: uuid.UUID | str) -> str:
    return f"trace.{trace_id}"


def group_send_now(
    group: str, message: dict[str, Any], *, timeout: float = SEND_TIMEOUT_SECONDS
) -> None:
    """Send at once. A broadcast that fails is logged, never raised: the step is
    already saved, and a client catches up from the database by its cursor."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        if _outer_loop_running():
            async_to_sync(layer.group_send)(group, message)
        else:
            asyncio.run_coroutine_threadsafe(
                layer.group_send(group, message), _sender_loop()
            ).result(timeout=timeout)
    except Exception:  # noqa: BLE001 - the saved data is the truth; live delivery is best effort
        logger.exception("broadcast to %s failed", group)


def group_send_on_commit(group: str, message: dict[str, Any]) -> None:
    """Send once the surrounding transaction commits (at once outside a transaction)."""
    transaction.on_commit(lambda: group_send_now(group, message))
