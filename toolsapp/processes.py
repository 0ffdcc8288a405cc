"""Run one tool call in a child process that can be killed.

A Python thread cannot be stopped, so a tool that overruns its deadline in a thread keeps
its CPU and its side effects going. Every tool call that runs code (``python`` tools and
the ``code`` sandbox) therefore runs in a forked child: the parent waits on a pipe with
a deadline, looks at an optional cancel Event a few times a second, and kills the child's
whole process group (and any extra processes the child names) when time is up.

The child writes one JSON document to its output pipe: ``{"ok": value}`` or
``{"error": message}``. Fork costs a few milliseconds (``bench/tool_kill.py`` measures
it); the parent's imported modules are there at once, with no interpreter start.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import threading
import time
from collections.abc import Callable
from typing import Any, NoReturn

from .executors.base import ToolCancelled, ToolExecutionError, ToolTimeout

# How often the parent looks at the cancel Event while it waits.
POLL_SECONDS = 0.05
DEFAULT_MAX_OUTPUT = 1 << 20  # bytes of JSON a tool call may send back

# Objects a child must not let be garbage-collected (their finalizers would close
# sockets it shares with the parent); the child exits with os._exit, never freeing them.
KEEP_ALIVE: list[Any] = []

Child = Callable[[int, int], NoReturn]
"""Runs in the forked child with (output fd, control fd); must never return. The control
fd takes decimal pids, one a line, of processes to kill with the child (e.g. the init of
a pid namespace the child made)."""


_PR_SET_PDEATHSIG = 1


def _die_with(parent: int) -> None:
    """In a forked child: SIGKILL when ``parent`` (the thread that forked) dies."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before the call above
        os._exit(70)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def child_reply(fd: int, *, value: Any = None, error: str | None = None) -> NoReturn:
    """Send the call's answer from the child and exit at once (no atexit, no finalizers:
    the child shares the parent's sockets and must not close them politely)."""
    try:
        if error is not None:
            payload = json.dumps({"error": error})
        else:
            try:
                payload = json.dumps({"ok": value})
            except (TypeError, ValueError):
                payload = json.dumps({"ok": repr(value)})
        write_all(fd, payload.encode())
        # The parent reads to the end of the pipe; closed here, the end comes now, not
        # after the kernel has torn down this process's copy of the parent's memory.
        os.close(fd)
        code = 0
    except BaseException:  # noqa: BLE001 - nothing can be reported any more
        code = 70
    os._exit(code)


def _named(ctl_fd: int) -> bytes:
    """The pids the child has named on the control pipe so far."""
    extra = b""
    with contextlib.suppress(OSError):
        while chunk := os.read(ctl_fd, 4096):
            extra += chunk
    return extra


def _kill(pid: int, named: bytes) -> None:
    """Kill the child's process group and the pids it named (pass none once the child
    has exited by itself: what it named ended before it did)."""
    for line in named.split():
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(line), signal.SIGKILL)
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)


def _describe_exit(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        reason = {
            signal.SIGXCPU: "it used up its CPU time",
            signal.SIGKILL: "it was killed (out of memory or CPU time)",
            signal.SIGSEGV: "it crashed (segmentation fault)",
            signal.SIGXFSZ: "it wrote a file over the size limit",
        }.get(sig, f"it died of signal {signal.Signals(sig).name}")
        return f"the tool process ended without an answer: {reason}"
    return f"the tool process ended without an answer (exit status {os.WEXITSTATUS(status)})"


# Children that answered and were killed, not yet reaped (their exit was still going on).
_unreaped: set[int] = set()
_unreaped_lock = threading.Lock()


def _reap_later(pid: int) -> None:
    with _unreaped_lock:
        _unreaped.add(pid)


def _reap_exited() -> None:
    """Reap the killed children that have finished exiting."""
    with _unreaped_lock:
        for pid in list(_unreaped):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere
                done = pid
            if done:
                _unreaped.discard(pid)


def run_killable(
    *,
    child: Child,
    timeout: float,
    cancel: threading.Event | None = None,
    max_output: int = DEFAULT_MAX_OUTPUT,
) -> Any:
    """Fork, run ``child`` there, and return the value it sends back.

    Raises ToolTimeout after ``timeout`` seconds, ToolCancelled soon after ``cancel`` is
    set, and ToolExecutionError when the child reports an error, sends more than
    ``max_output`` bytes or dies without an answer. In each case the child and its
    process group have been killed (or have exited) when this returns; a child that
    answered is reaped by a later call (``_reap_exited``), not waited for.
    """
    _reap_exited()
    out_r, out_w = os.pipe()
    ctl_r, ctl_w = os.pipe()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # the child
        try:
            # It dies with the process that runs the call: a worker killed mid-call (an
            # OOM kill, kill -9) leaves no tool running on, orphaned, in its own group.
            _die_with(parent)
            os.close(out_r)
            os.close(ctl_r)
            os.setpgid(0, 0)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            child(out_w, ctl_w)
        finally:
            os._exit(70)
    os.close(out_w)
    os.close(ctl_w)
    os.set_blocking(ctl_r, False)
    # Also set the group from this side: whichever runs first, the kill below finds it.
    with contextlib.suppress(OSError):
        os.setpgid(pid, pid)
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    size = 0
    failure: ToolExecutionError | None = None
    reaped = answered = False
    named = b""
    status = 0
    try:
        while True:
            if cancel is not None and cancel.is_set():
                failure = ToolCancelled("the tool call was cancelled")
                break
            left = deadline - time.monotonic()
            if left <= 0:
                failure = ToolTimeout(f"the tool did not answer within {timeout:g} s")
                break
            ready, _, _ = select.select([out_r], [], [], min(POLL_SECONDS, left))
            if not ready:
                continue
            chunk = os.read(out_r, 65536)
            if not chunk:
                break  # the child closed its end: it has answered or died
            size += len(chunk)
            if size > max_output:
                failure = ToolExecutionError(f"the tool's answer is over {max_output} bytes")
                break
            chunks.append(chunk)
        named = _named(ctl_r) if failure is None else b""
        # It has answered and is on its way out; its exit (the kernel tearing down its
        # copy of this process's memory) takes as long again as the call. Nothing else
        # of it is wanted: it is killed below with its group and reaped later.
        answered = failure is None and bool(chunks) and not named
        if failure is None and not answered:
            # No answer (its exit status tells why), or it named processes that end
            # before it does: wait for it to exit by itself.
            while time.monotonic() < deadline:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    reaped = True
                    break
                time.sleep(0.001)
    finally:
        if reaped or answered:
            _kill(pid, b"")  # what is left of it and its group
            if not reaped:
                _reap_later(pid)
        else:
            _kill(pid, named + _named(ctl_r))
            _, status = os.waitpid(pid, 0)
        os.close(out_r)
        os.close(ctl_r)
    if failure is not None:
        raise failure
    raw = b"".join(chunks)
    if not raw:
        raise ToolExecutionError(_describe_exit(status))
    try:
        reply = json.loads(raw)
    except ValueError as exc:
        raise ToolExecutionError(
            f"the tool process sent an answer that is not JSON: {exc}"
        ) from exc
    if "error" in reply:
        raise ToolExecutionError(reply["error"])
    return reply.get("ok")
