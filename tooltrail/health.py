"""Health of the parts the app needs: database, Redis, workers."""

from __future__ import annotations

import json
from typing import Any

import redis
from django.conf import settings
from django.db import connection

WORKER_KEY_PREFIX = "tooltrail:worker:"


def health_report() -> dict[str, Any]:
    report: dict[str, Any] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        report["database"] = {"ok": True, "engine": connection.vendor}
    except Exception as exc:  # noqa: BLE001
        report["database"] = {"ok": False, "error": str(exc)}
    workers: list[dict[str, Any]] = []
    try:
        client = redis.Redis.from_url(
            settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2
        )
        client.ping()
        report["redis"] = {"ok": True}
        for key in client.scan_iter(WORKER_KEY_PREFIX + "*"):
            raw = client.get(key)
            if raw:
                workers.append(json.loads(raw))
    except Exception as exc:  # noqa: BLE001
        report["redis"] = {"ok": False, "error": str(exc)}
    queues = sorted({q for w in workers for q in w.get("queues", [])})
    report["workers"] = {
        "ok": "agents" in queues,
        "count": len(workers),
        "queues": queues,
        "hosts": sorted(w.get("hostname", "?") for w in workers),
    }
    if not report["workers"]["ok"] and report["redis"]["ok"]:
        report["workers"]["error"] = "no live worker consumes the agents queue"
    report["ok"] = all(
        part["ok"] for part in (report["database"], report["redis"], report["workers"])
    )
    return report
