"""A fork waits for another thread's database work to finish (tooltrail.forksafe): a child
forked while that thread was inside SQLite would start with SQLite's mutexes held and
hang the first time it used the database (how a Celery pool child replacing a killed
one hung with a run, about one crash in ten)."""

from __future__ import annotations

import os
import threading
import time

from tooltrail.forksafe import database_work


def fork_and_reap() -> float:
    """When os.fork() returned in the parent (the child exits at once)."""
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    returned = time.monotonic()
    os.waitpid(pid, 0)
    return returned


def test_a_fork_waits_while_another_thread_does_database_work():
    inside, leave = threading.Event(), threading.Event()
    leaving: list[float] = []

    def work() -> None:
        with database_work():
            inside.set()
            leave.wait(10)
            leaving.append(time.monotonic())  # the last thing before the lock is let go

    worker = threading.Thread(target=work)
    worker.start()
    assert inside.wait(10)
    threading.Timer(0.3, leave.set).start()
    forked = fork_and_reap()
    assert leaving and forked >= leaving[0], "the fork went ahead during the work"
    worker.join(10)
    started = time.monotonic()
    fork_and_reap()  # nothing in progress: it goes through
    assert time.monotonic() - started < 10


def test_the_thread_doing_the_work_may_fork_itself_and_the_child_can_use_it():
    with database_work():
        pid = os.fork()
        if pid == 0:
            with database_work():  # the child's copy of the lock is free
                os._exit(0)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
