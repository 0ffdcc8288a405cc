"""`make up`'s launcher, for real: two stacks started at the same moment from nothing
(embedded Redis, migrations, demo data, an admin, Daphne, workers), each running only
its own runs; a pool child killed under a run, a worker killed outright, then Ctrl-C
(twice) and SIGHUP stop every process each one started."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import redis

from tooltrail import launcher

pytestmark = pytest.mark.integration

OPS = str(Path(__file__).with_name("stack_ops.py"))


def processes_with_env(marker: str) -> list[int]:
    """Pids of live processes whose environment holds ``marker``."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if marker.encode() in f.read():
                    pids.append(int(entry))
        except OSError:
            continue
    return pids


class Up:
    """One `python -m tooltrail.launcher up`, its output read as it comes."""

    def __init__(self, tmp_path: Path, name: str) -> None:
        self.port = launcher.free_port()
        self.var = tmp_path / name / "var"
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}
        }
        env.update(
            PORT=str(self.port),
            TOOLTRAIL_VAR_DIR=str(self.var),
            TOOLTRAIL_ADMIN_PASSWORD="launcher-test-pw-1",
            TOOLTRAIL_HEARTBEAT_SECONDS="0.5",
            PYTHONUNBUFFERED="1",
        )
        self.env = env
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tooltrail.launcher", "up"],
            cwd=launcher.BASE_DIR,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, timeout: float = 150) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            assert time.monotonic() < deadline and self.proc.poll() is None, (
                f"no {text!r} in:\n{self.output[-3000:]}"
            )
            time.sleep(0.1)

    def ops(self, *args: str) -> dict:
        """stack_ops.py against this stack, as `manage.py` beside it would run."""
        env = {**self.env, "REDIS_URL": (self.var / "embedded_redis_url").read_text()}
        done = subprocess.run(
            [sys.executable, OPS, *args], env=env, capture_output=True, text=True, timeout=150
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    def logs(self, tail: int = 4000) -> str:
        """The end of each of the stack's logs (what a failed assertion shows)."""
        return "\n".join(
            f"--- {log.name}\n{log.read_text(errors='replace')[-tail:]}"
            for log in sorted((self.var / "log").glob("*"))
        )

    def pids(self) -> list[int]:
        return processes_with_env(f"TOOLTRAIL_VAR_DIR={self.var}")

    def leftovers(self, grace: float = 10.0) -> list[str]:
        """Processes of this stack still alive after ``grace`` seconds (what exits on a
        signal takes a moment), with their command lines."""
        deadline = time.monotonic() + grace
        while self.pids() and time.monotonic() < deadline:
            time.sleep(0.2)
        found = []
        for pid in self.pids():
            with contextlib.suppress(OSError), open(f"/proc/{pid}/cmdline", "rb") as f:
                command = f.read().replace(b"\0", b" ").decode()[:200]
                with open(f"/proc/{pid}/status") as st:
                    status = dict(
                        line.split(":\t", 1) for line in st.read().splitlines() if ":\t" in line
                    )
                found.append(
                    f"{pid} (parent {status.get('PPid')}, {status.get('State')}, "
                    f"group {os.getpgid(pid)}): {command}"
                )
        return found

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        for pid in self.pids():
            os.kill(pid, signal.SIGKILL)


def worker_main_pid(up: Up, queue: str) -> int:
    for pid in up.pids():
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            args = f.read().split(b"\0")
        if b"celery" in args and queue.encode() in args and os.getpgid(pid) == pid:
            return pid
    raise AssertionError(f"no {queue} worker")


def test_two_stacks_started_at_once_each_run_their_own_runs_and_survive_crashes(tmp_path):
    a, b = Up(tmp_path, "a"), Up(tmp_path, "b")
    try:
        for up in (a, b):
            up.wait_for("(Ctrl-C stops it)")
            # The URL comes last, after the workers are ready; their banners are in logs.
            tail = up.output.rstrip().splitlines()[-2:]
            assert tail == [
                f"Tooltrail is running at http://127.0.0.1:{up.port}/",
                "(Ctrl-C stops it)",
            ]
            assert "Admin login: admin (password from TOOLTRAIL_ADMIN_PASSWORD)" in up.output
            assert "celery@" not in up.output and "-------------- " not in up.output
            assert httpx.get(f"http://127.0.0.1:{up.port}/healthz", timeout=5).json() == {
                "ok": True
            }
            assert httpx.get(f"http://127.0.0.1:{up.port}/agents/", timeout=5).status_code == 302

            # Owner-only files; a Redis that nobody can use without the password.
            for path in (up.var, up.var / "tooltrail.sqlite3", up.var / "secret_key"):
                assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
            url = (up.var / "embedded_redis_url").read_text()
            assert stat.S_IMODE((up.var / "embedded_redis_url").stat().st_mode) == 0o600
            with pytest.raises(redis.AuthenticationError):
                redis.Redis.from_url(url.replace(url.split("@")[0], "redis://")).ping()
        assert (a.var / "embedded_redis_url").read_text() != (
            b.var / "embedded_redis_url"
        ).read_text()

        # Every run on its own stack: none lost to the other stack's workers.
        slow = a.ops("slow")
        assert b.ops("runs", "5") == {"statuses": ["succeeded"] * 5}

        # The pool child running a trace dies: the trace fails at once, with the reason,
        # and the next twenty runs all run. (About one crash in ten, the replacement child
        # used to hang for good in SQLite with the first of them: it was forked while the
        # worker's upkeep thread was inside SQLite; see tooltrail.forksafe.)
        os.kill(int(slow["worker"].rsplit(":", 1)[1]), signal.SIGKILL)
        ended = a.ops("wait", slow["trace"])
        assert ended["status"] == "failed" and ended["error"].startswith("worker lost"), ended
        runs = a.ops("runs", "20")
        assert runs == {"statuses": ["succeeded"] * 20}, a.logs()

        # A whole worker dies: the launcher restarts it and says so; the stack goes on.
        os.killpg(worker_main_pid(a, "agents"), signal.SIGKILL)
        a.wait_for("agents worker exited with -9; restarting it in 1 s")
        a.wait_for("agents worker restarted")
        assert a.ops("runs", "3") == {"statuses": ["succeeded"] * 3}
        assert httpx.get(f"http://127.0.0.1:{a.port}/healthz", timeout=5).status_code == 200

        # SIGHUP (the terminal closed) stops everything; so does Ctrl-C, twice in a row.
        os.kill(a.proc.pid, signal.SIGHUP)
        os.killpg(b.proc.pid, signal.SIGINT)
        time.sleep(0.3)
        os.killpg(b.proc.pid, signal.SIGINT)
        assert a.proc.wait(timeout=60) == 0
        assert b.proc.wait(timeout=60) == 0
        for up in (a, b):
            assert not launcher.port_in_use(up.port), "Daphne outlived the launcher"
            assert up.leftovers() == [], "a child outlived the launcher"
            assert not (up.var / "embedded_redis_url").exists()
    finally:
        a.kill()
        b.kill()


def test_children_die_with_a_launcher_killed_outright(tmp_path):
    up = Up(tmp_path, "c")
    try:
        up.wait_for("(Ctrl-C stops it)")
        os.kill(up.proc.pid, signal.SIGKILL)  # no clean-up code runs
        up.proc.wait(timeout=10)
        assert up.leftovers(grace=30) == [], "children outlived a killed launcher"
    finally:
        up.kill()


def test_a_failed_migrate_leaves_no_stale_redis_url(tmp_path):
    var = tmp_path / "d" / "var"
    var.mkdir(parents=True)
    (var / "tooltrail.sqlite3").write_text("this is not a database")
    up = Up(tmp_path, "d")
    try:
        assert up.proc.wait(timeout=120) == 1
        assert "migrate failed" in up.output
        assert not (up.var / "embedded_redis_url").exists()
        assert up.leftovers() == []
    finally:
        up.kill()
