"""The one broadcast helper: send to a trace's channel group after the commit.

Group names come from one place (``trace_group``); Channels group names may hold
only letters, digits, ``-``, ``_`` and ``.``, so no colons.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)

TRACE_LIST_GROUP = "traces.list"


def trace_group(trace_id: uuid.UUID | str) -> str:
    return f"trace.{trace_id}"


def group_send_now(group: str, message: dict[str, Any]) -> None:
    """Send at once. A broadcast that fails is logged, never raised: the step is
    already saved, and a client catches up from the database by its cursor."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, message)
    except Exception:  # noqa: BLE001 - the saved data is the truth; live delivery is best effort
        logger.exception("broadcast to %s failed", group)


def group_send_on_commit(group: str, message: dict[str, Any]) -> None:
    """Send once the surrounding transaction commits (at once outside a transaction)."""
    transaction.on_commit(lambda: group_send_now(group, message))
