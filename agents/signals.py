"""Worker-side upkeep: each Celery worker announces itself in Redis (for /healthz) and
reaps traces whose worker died. Both are idempotent, so any number of workers may run it."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time

from celery.signals import worker_ready, worker_shutdown

from tooltrail.health import WORKER_KEY_PREFIX

logger = logging.getLogger(__name__)
_stop = threading.Event()


def _upkeep_loop(hostname: str, queues: list[str]) -> None:
    import redis
    from django.conf import settings
    from django.db import close_old_connections

    from agents.training.jobs import jobs_reap_stale
    from traces.services import traces_reap_stale

    client = redis.Redis.from_url(settings.REDIS_URL)
    interval = max(0.5, settings.TOOLTRAIL_HEARTBEAT_SECONDS)
    while not _stop.is_set():
        try:
            client.set(
                WORKER_KEY_PREFIX + hostname,
                json.dumps({"hostname": hostname, "queues": queues, "at": time.time()}),
                ex=int(interval * 5) + 5,
            )
        except Exception:  # noqa: BLE001
            logger.exception("could not write the worker heartbeat")
        try:
            close_old_connections()
            for trace in traces_reap_stale():
                logger.warning("reaped trace %s: %s", trace.id, trace.error)
            for job in jobs_reap_stale():
                logger.warning("reaped job %s: %s", job.id, job.error)
        except Exception:  # noqa: BLE001
            logger.exception("reaper failed")
        _stop.wait(interval)


@worker_ready.connect
def _start_upkeep(sender=None, **kwargs) -> None:
    hostname = getattr(sender, "hostname", None) or socket.gethostname()
    try:
        queues = [q.name for q in sender.app.amqp.queues.consume_from.values()]
    except AttributeError:
        queues = []
    threading.Thread(
        target=_upkeep_loop, args=(hostname, queues), daemon=True, name="tooltrail-upkeep"
    ).start()


@worker_shutdown.connect
def _stop_upkeep(**kwargs) -> None:
    _stop.set()
