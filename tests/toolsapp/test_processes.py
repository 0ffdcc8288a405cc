"""toolsapp.processes: a call that has answered returns at once; what is left of its
process is killed, and reaped by a later call."""

from __future__ import annotations

import os
import time
from pathlib import Path

from toolsapp import processes


def process_state(pid: int) -> str:
    """'Z' for a zombie, 'gone' once reaped, else the running state."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return "gone"
    return stat.rpartition(")")[2].split()[0]


def answer_then_linger(out_fd: int, ctl_fd: int):
    """Answers, then stays alive (as a slow exit would), with a helper in its group."""
    helper = os.fork()
    if helper == 0:
        os.close(out_fd)
        time.sleep(120)
        os._exit(0)
    processes.write_all(out_fd, f'{{"ok": [{os.getpid()}, {helper}]}}'.encode())
    os.close(out_fd)
    time.sleep(120)
    os._exit(0)


def quick_answer(out_fd: int, ctl_fd: int):
    processes.child_reply(out_fd, value=os.getpid())


def wait_for_state(pid: int, states: set[str], seconds: float = 10) -> str:
    end = time.monotonic() + seconds
    while (state := process_state(pid)) not in states and time.monotonic() < end:
        time.sleep(0.01)
    return state


def test_an_answered_call_returns_without_waiting_for_its_process_to_end():
    started = time.monotonic()
    child, helper = processes.run_killable(child=answer_then_linger, timeout=60)
    # Before, the call returned only once the child had exited by itself (here: after
    # its 60 s limit, which it would have reached first).
    assert time.monotonic() - started < 30
    # Both were killed: the child is left a zombie for a later call to reap, the helper
    # (a grandchild, reparented) goes away.
    assert wait_for_state(child, {"Z", "gone"}) in {"Z", "gone"}
    assert wait_for_state(helper, {"Z", "gone"}) in {"Z", "gone"}

    assert isinstance(processes.run_killable(child=quick_answer, timeout=60), int)
    assert process_state(child) == "gone"  # reaped by the next call
    assert child not in processes._unreaped


def test_many_calls_leave_no_zombies_behind():
    pids = [processes.run_killable(child=quick_answer, timeout=60) for _ in range(20)]
    for pid in pids[:-1]:
        wait_for_state(pid, {"Z", "gone"})
    processes.run_killable(child=quick_answer, timeout=60)
    assert [pid for pid in pids[:-1] if process_state(pid) != "gone"] == []
