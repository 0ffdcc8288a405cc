"""The sandbox that ``code`` tools run in: a Python function's source, from a model or a
person, run where it can reach nothing of ours.

Built on the killable tool call of ``toolsapp.processes`` (one forked child per call,
killed at its deadline or on cancel). Inside that child:

1. ``unshare`` new mount, network, pid, IPC and UTS namespaces, then fork the process
   that runs the code: it is pid 1 of its own pid namespace, so killing it (the parent
   is told its pid) kills everything it started.
2. No network: the new network namespace has only a loopback device, and it is down;
   the sockets the worker already holds are closed before the code starts.
3. Files: mounts are made private, fresh small tmpfs go over ``/tmp``, ``/var/tmp`` and
   ``/dev/shm``, and every path in ``TOOLTRAIL_SANDBOX_HIDDEN_PATHS`` (the repository,
   ``var/`` with the database and the secret key, the virtualenv, ``/root``, ``/home`` …)
   is covered by an empty tmpfs. Only the Python installation is mounted back, read-only.
   ``/proc`` shows the namespace's own processes.
4. Limits (``resource.setrlimit``): address space, CPU seconds, file size, processes and
   open files; the answer is capped by the parent at ``max_output`` bytes.
5. It drops to ``nobody`` (no groups, no new privileges) in an empty working directory
   and ``exec``s a fresh ``python -I -S``: nothing of the worker's memory (settings,
   secrets) and none of its environment reaches the code.

Needs root (to make namespaces). Where that is missing the call fails with a clear
error instead of running the code unsandboxed.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import sys
import threading
from dataclasses import dataclass
from typing import Any, NoReturn

from django.conf import settings

from . import processes
from .executors.base import ToolExecutionError

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_MOVE, MS_REC, MS_PRIVATE = 32, 4096, 8192, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38
NOBODY = 65534
WORKDIR = "/tmp/work"

# Runs in the fresh interpreter, as nobody. Reads the job from fd 0, answers on fd 1.
RUNNER = r"""
import json, os, sys, traceback
me = os.getpid()
job = json.loads(sys.stdin.buffer.read())
os.close(0)
out = os.dup(1)
class _Capped:
    def __init__(self): self.size = 0
    def write(self, s):
        self.size += len(s)
        return len(s)
    def flush(self): pass
sys.stdout = sys.stderr = _Capped()
def reply(doc):
    if os.getpid() != me:
        os._exit(1)
    data = json.dumps(doc).encode()
    while data:
        data = data[os.write(out, data):]
    os._exit(0)
try:
    namespace = {"__name__": "tool"}
    exec(compile(job["source"], "<tool>", "exec"), namespace)
    func = namespace.get(job["function"])
    if not callable(func):
        reply({"error": "the source defines no function named %r" % job["function"]})
    value = func(**job["arguments"])
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        value = repr(value)
    reply({"ok": value})
except MemoryError:
    reply({"error": "MemoryError: the tool ran out of memory (limit %d MB)" % job["memory_mb"]})
except BaseException as exc:
    where = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == "<tool>"]
    line = " (line %d)" % where[-1].lineno if where else ""
    reply({"error": "%s: %s%s" % (type(exc).__name__, exc, line)})
"""


class SandboxUnavailable(ToolExecutionError):
    """This machine cannot make the sandbox (not root, or no namespaces)."""


@dataclass(frozen=True)
class Limits:
    wall_seconds: float
    cpu_seconds: int
    memory_mb: int
    file_bytes: int
    processes: int
    max_output: int

    @classmethod
    def default(cls, *, timeout: float) -> Limits:
        return cls(
            wall_seconds=timeout,
            # A second over the wall time: a busy loop meets the wall deadline first.
            cpu_seconds=int(timeout + 0.999) + 1,
            memory_mb=settings.TOOLTRAIL_SANDBOX_MEMORY_MB,
            file_bytes=settings.TOOLTRAIL_SANDBOX_FILE_BYTES,
            processes=settings.TOOLTRAIL_SANDBOX_PROCESSES,
            max_output=settings.TOOLTRAIL_SANDBOX_MAX_OUTPUT,
        )


def hidden_paths() -> list[str]:
    """Existing paths the code must not see, outermost first."""
    paths = {os.path.realpath(p) for p in settings.TOOLTRAIL_SANDBOX_HIDDEN_PATHS if p}
    existing = sorted(p for p in paths if os.path.exists(p) and p != "/")
    # A path under another hidden one is covered already.
    return [p for p in existing if not any(p.startswith(q + "/") for q in existing)]


def _python() -> tuple[str, str]:
    """The base interpreter (not the virtualenv's) and the installation it needs."""
    exe = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    return exe, os.path.realpath(sys.base_prefix)


_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source: str, target: str, fstype: str, flags: int, data: str = "") -> None:
    _check(
        _libc.mount(source.encode(), target.encode(), fstype.encode(), flags, data.encode()),
        f"mount {target}",
    )


def _build_filesystem(*, keep: str, file_bytes: int) -> None:
    """In the new mount namespace: private mounts, fresh temp dirs, hidden paths, the
    Python installation mounted back read-only, a /proc of this pid namespace."""
    _mount("none", "/", "", MS_REC | MS_PRIVATE)
    size = f"size={max(file_bytes * 4, 1 << 20)}"
    _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"mode=0755,{size}")
    staging = "/tmp/.python"
    os.mkdir(staging)
    _mount(keep, staging, "", MS_BIND | MS_REC)
    _mount("none", staging, "", MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID)
    for path in hidden_paths():
        if os.path.isdir(path):
            _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755,size=64k")
        else:
            _mount("/dev/null", path, "", MS_BIND)
    if not os.path.exists(os.path.join(keep, "bin")):  # hidden: put it back where it was
        os.makedirs(keep, exist_ok=True)
        _mount(staging, keep, "", MS_MOVE)
    else:
        _check(_libc.umount2(staging.encode(), 2), "umount staging")
    os.rmdir(staging)
    for path in ("/var/tmp", "/dev/shm"):
        if os.path.isdir(path):
            _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=64k")
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    os.mkdir(WORKDIR, 0o700)
    os.chown(WORKDIR, NOBODY, NOBODY)


def _set_limits(limits: Limits) -> None:
    memory = limits.memory_mb * 1024 * 1024
    for which, value in (
        (resource.RLIMIT_AS, memory),
        (resource.RLIMIT_CPU, limits.cpu_seconds),
        (resource.RLIMIT_FSIZE, limits.file_bytes),
        (resource.RLIMIT_NPROC, limits.processes),
        (resource.RLIMIT_NOFILE, 64),
        (resource.RLIMIT_CORE, 0),
    ):
        resource.setrlimit(which, (value, value))


def _code_process(out_fd: int, job: bytes, limits: Limits) -> NoReturn:
    """pid 1 of the new pid namespace: build the jail, drop privileges, exec Python."""
    try:
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        # The launcher runs everything with umask 077 (tooltrail.launcher); the jail's
        # directories must stay traversable by nobody.
        os.umask(0o022)
        exe, prefix = _python()
        _build_filesystem(keep=prefix, file_bytes=limits.file_bytes)
        job_path = "/tmp/.job"
        with open(job_path, "wb") as f:
            f.write(job)
        job_fd = os.open(job_path, os.O_RDONLY)
        os.unlink(job_path)
        null = os.open("/dev/null", os.O_WRONLY)
        os.dup2(job_fd, 0)
        os.dup2(out_fd, 1)
        os.dup2(null, 2)
        # Every socket and file the worker holds (database, Redis) is closed here.
        os.closerange(3, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
        os.chdir(WORKDIR)
        _set_limits(limits)
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
        _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
        # Credentials changed: the parent-death signal was cleared, set it again.
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        env = {"PATH": "/usr/bin:/bin", "HOME": WORKDIR, "LANG": "C.UTF-8", "TMPDIR": WORKDIR}
        os.execve(exe, [exe, "-I", "-S", "-B", "-c", RUNNER], env)
    except BaseException as exc:  # noqa: BLE001 - reported as the call's error
        processes.child_reply(out_fd, error=f"the sandbox could not be set up: {exc}")
    os._exit(70)


def _child(job: bytes, limits: Limits):
    def run(out_fd: int, ctl_fd: int) -> NoReturn:
        flags = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS
        if _libc.unshare(flags) != 0:
            err = ctypes.get_errno()
            processes.child_reply(
                out_fd,
                error="the code sandbox is not available on this machine: it needs root "
                f"to make namespaces (unshare: {os.strerror(err)})",
            )
        pid = os.fork()
        if pid == 0:
            _code_process(out_fd, job, limits)
        processes.write_all(ctl_fd, f"{pid}\n".encode())
        os.close(out_fd)
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status):  # die the same way, so the parent can say why
            sig = os.WTERMSIG(status)
            signal.signal(sig, signal.SIG_DFL)
            os.kill(os.getpid(), sig)
        os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 70)

    return run


def sandbox_run(
    *,
    source: str,
    function: str,
    arguments: dict[str, Any],
    timeout: float,
    cancel: threading.Event | None = None,
    limits: Limits | None = None,
) -> Any:
    """Define ``source`` in a fresh sandboxed interpreter and return
    ``function(**arguments)``. Raises ToolTimeout, ToolCancelled or ToolExecutionError
    (the code's own exception, by type, message and line; a limit it hit; a sandbox that
    cannot be made). Whatever the code started is dead when this returns."""
    limits = limits or Limits.default(timeout=timeout)
    job = json.dumps(
        {
            "source": source,
            "function": function,
            "arguments": arguments,
            "memory_mb": limits.memory_mb,
        }
    ).encode()
    return processes.run_killable(
        child=_child(job, limits),
        timeout=limits.wall_seconds,
        cancel=cancel,
        max_output=limits.max_output,
    )
