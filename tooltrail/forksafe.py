"""Database work in a thread, made safe for a process that forks.

A fork copies one thread, and every lock as it was at that instant. When another thread
of the forking process is inside SQLite at that moment, the child starts with SQLite's
own mutexes held by a thread it does not have, and hangs the first time it touches
SQLite. That is how a Celery worker lost runs: its upkeep thread (heartbeat, reaper)
queried SQLite while the pool forked a replacement for a killed child, and the new child
took a run and hung for good in ``sqlite3Malloc`` (``pthread_mutex_lock``, seen with
py-spy), the run left ``queued``/``running`` with nothing executing it; about one crash
in ten.

Threads that use the database do it inside ``database_work()``; every fork of the
process first waits for that work to finish (``os.register_at_fork``), so no child
starts in the middle of it. Forks from the thread doing the work itself go through (the
lock is re-entrant).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator

_lock = threading.RLock()


def _release() -> None:
    _lock.release()


os.register_at_fork(before=_lock.acquire, after_in_parent=_release, after_in_child=_release)


@contextlib.contextmanager
def database_work() -> Iterator[None]:
    """Hold off this process's forks while the block runs."""
    with _lock:
        yield
