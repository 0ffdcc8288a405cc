"""Calls in progress: model and tool calls that started and have not ended yet.

They are transient (no step exists until the call ends), so they live in Redis, one
hash per trace with a TTL, not in the database: a page that (re)connects mid-call reads
them in its catch-up; a worker that dies leaves nothing behind for longer than the TTL.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from typing import Any

from django.conf import settings

_client_lock = threading.Lock()
_client: tuple[int, Any] | None = None


def redis_client():
    """This process's Redis client (made afresh after a fork)."""
    global _client
    import redis

    with _client_lock:
        if _client is None or _client[0] != os.getpid():
            # Short timeouts: calls in progress are a display, never worth stalling a run.
            _client = (
                os.getpid(),
                redis.Redis.from_url(
                    settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1
                ),
            )
        return _client[1]


def calls_key(trace_id: uuid.UUID | str) -> str:
    return f"tooltrail:calls:{trace_id}"


def call_ttl_seconds() -> int:
    return int(getattr(settings, "TOOLTRAIL_CALL_TTL_SECONDS", 3600))


def calls_store(*, trace_id: uuid.UUID | str, call: dict[str, Any]) -> None:
    client = redis_client()
    key = calls_key(trace_id)
    pipe = client.pipeline()
    pipe.hset(key, call["id"], json.dumps(call, default=str))
    pipe.expire(key, call_ttl_seconds())
    pipe.execute()


def calls_forget(*, trace_id: uuid.UUID | str, call_id: str) -> None:
    redis_client().hdel(calls_key(trace_id), call_id)


def calls_read(*, trace_id: uuid.UUID | str) -> list[dict[str, Any]]:
    raw = redis_client().hgetall(calls_key(trace_id))
    calls = []
    for value in raw.values():
        try:
            calls.append(json.loads(value))
        except ValueError:
            continue
    return sorted(calls, key=lambda c: c.get("started_at") or 0)
