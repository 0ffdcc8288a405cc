"""Worker-side upkeep: each Celery worker announces itself in Redis (for /healthz) and
reaps traces whose worker died or whose run overran its deadline; both are idempotent,
so any number of workers may run it. When Celery sees a pool child die under a run
(``WorkerLostError``), that trace ends ``failed`` at once; the reaper is the backstop."""

from __future__ import annotations

import gc
import json
import logging
import socket
import threading
import time

from billiard.exceptions import WorkerLostError
from celery.signals import (
    task_failure,
    worker_process_init,
    worker_ready,
    worker_shutdown,
)

from tooltrail.forksafe import database_work
from tooltrail.health import WORKER_KEY_PREFIX

logger = logging.getLogger(__name__)
_stop = threading.Event()


def _upkeep_loop(hostname: str, queues: list[str]) -> None:
    import redis
    from django.conf import settings
    from django.db import close_old_connections

    from agents.services import runs_requeue_lost
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
            # Not while the pool forks a child (see tooltrail.forksafe).
            with database_work():
                close_old_connections()
                reaped = traces_reap_stale()
                jobs = jobs_reap_stale()
                ended = runs_requeue_lost()
            for trace in reaped:
                logger.warning("reaped trace %s: %s", trace.id, trace.error)
            for job in jobs:
                logger.warning("reaped job %s: %s", job.id, job.error)
            for trace in ended:
                logger.warning("gave up on queued trace %s: %s", trace.id, trace.error)
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


@worker_process_init.connect
def _freeze_loaded_heap(**kwargs) -> None:
    """In each pool child, before its first task: what the worker loaded (Django, the
    apps, Celery: 345,000 objects) stays for the process's life. A full pass of the
    collector walked all of it, ~180 ms in the middle of a run, between a step's commit
    and its broadcast; frozen, the passes skip it."""
    gc.freeze()


@worker_shutdown.connect
def _stop_upkeep(**kwargs) -> None:
    _stop.set()


@task_failure.connect
def _end_trace_of_lost_worker(sender=None, exception=None, args=None, **kwargs) -> None:
    """Celery's main process noticed the pool child running a trace die (SIGKILL, OOM):
    end that trace now rather than when its heartbeats go stale."""
    if not isinstance(exception, WorkerLostError):
        return
    if getattr(sender, "name", "") != "agents.tasks.agent_run_task" or not args:
        return
    from django.db import close_old_connections, connection

    from traces.models import Trace
    from traces.services import trace_finish

    close_old_connections()
    try:
        trace = trace_finish(
            trace_id=args[0],
            status=Trace.Status.FAILED,
            error=f"worker lost: the process running it died ({exception})",
        )
        logger.warning("trace %s failed: %s", trace.id, trace.error)
    except Trace.DoesNotExist:
        pass
    except Exception:  # noqa: BLE001 - the reaper still ends it later
        logger.exception("could not end trace %s after its worker was lost", args[0])
    finally:
        # This runs in the worker's main process, which is about to fork a replacement
        # child: leave no connection open for the child to inherit.
        connection.close()
