"""A check from outside: the stack ``make up`` starts, under a few hundred malformed requests.

    .venv/bin/python bench/hostile_stack.py [--port 0]

Starts the stack the way ``make up`` does (``python -m tooltrail.launcher up``: embedded
Redis, SQLite under a temporary ``TOOLTRAIL_VAR_DIR``, migrate, demo data, an admin login,
Celery workers, beat and Daphne), waits for its URL, and then, over real HTTP and raw
websocket handshakes, sends the suite's table of hostile inputs (``tests/hostile_table.py``):

- every route with hostile path segments, by an anonymous caller, the logged-in admin
  (session + CSRF token) and a bearer token, GET and POST;
- hostile query strings (non-ASCII digits, huge and negative cursors, bad UTF-8) and
  hostile bodies (JSON nested 100,000 deep, wrong types, NUL bytes, bad UTF-8, forms)
  on every route;
- bodies over the size limit (3 MB) on the API and on a page;
- websocket handshakes with hostile paths and query strings sent as raw bytes.

It counts the answers by status, every 5xx, every ``/api/`` error that is not JSON and
every request the server dropped without an answer. Afterwards the stack must still be
healthy: ``/healthz`` says ok to the admin, a demo run started through the API succeeds,
and the launcher has restarted nothing. Prints the counts; the last line is
``server_errors=N`` (5xx + non-JSON API errors + dropped requests + failed health checks).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tooltrail.launcher import free_port  # noqa: E402


def stack_env(tmp: str) -> dict[str, str]:
    """This environment without a database, Redis or site of its own: the stack's
    embedded defaults under ``tmp``."""
    env = {
        k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "SITE_URL"}
    }
    env["TOOLTRAIL_VAR_DIR"] = tmp
    return env


def start_stack(tmp: str, port: int, password: str) -> tuple[subprocess.Popen, list[str]]:
    env = stack_env(tmp)
    env.update(
        PORT=str(port),
        TOOLTRAIL_ADMIN_PASSWORD=password,
        PYTHONUNBUFFERED="1",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "tooltrail.launcher", "up"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            lines.append(line.rstrip())
            if "Tooltrail is running at" in line:
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(600):
        proc.kill()
        raise SystemExit("the stack did not print its URL within 10 minutes:\n" + "\n".join(lines))
    return proc, lines


def manage(tmp: str, *args: str) -> str:
    env = {**stack_env(tmp), "DJANGO_SETTINGS_MODULE": "tooltrail.settings"}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def login(base: str, password: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=60, follow_redirects=False)
    page = client.get("/accounts/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    answer = client.post(
        "/accounts/login/",
        data={"username": "admin", "password": password, "csrfmiddlewaretoken": token},
        headers={"Referer": f"{base}/accounts/login/"},
    )
    assert answer.status_code == 302, f"login failed: {answer.status_code}"
    # The token the app's pages hand to htmx (login rotates it).
    home = client.get("/")
    client.headers["X-CSRFToken"] = re.search(r'"X-CSRFToken": "([^"]+)"', home.text).group(1)
    client.headers["Referer"] = f"{base}/"
    wrote = client.post("/api/runs", json={"agent": "demo", "input": "a session write"})
    assert wrote.status_code == 201, f"the session cannot write: {wrote.status_code} {wrote.text}"
    return client


class Tally:
    def __init__(self) -> None:
        self.statuses: Counter[int] = Counter()
        self.by_caller: dict[str, Counter[int]] = {}
        self.problems: list[str] = []

    def send(self, client: httpx.Client, method: str, path: str, **kwargs) -> None:
        what = f"{method} {path[:100]} {kwargs.get('headers', {}).get('Content-Type', '')}"
        try:
            response = client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            self.statuses[0] += 1
            self.problems.append(f"{what} → no answer ({type(exc).__name__})")
            return
        status = response.status_code
        self.statuses[status] += 1
        caller = client.headers.get("X-Caller", "?")
        self.by_caller.setdefault(caller, Counter())[status] += 1
        if status >= 500:
            self.problems.append(f"{what} → {status}")
        is_json = response.headers.get("Content-Type", "").startswith("application/json")
        if path.startswith("/api/") and status >= 400 and not is_json:
            self.problems.append(f"{what} → {status} without a JSON error")


def websocket_handshake(port: int, target: bytes, token: str) -> int:
    """A raw handshake (the query string sent byte for byte); the status the server
    answers, or 0 when it closed the connection without one."""
    key = base64.b64encode(secrets.token_bytes(16))
    request = (
        b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1:" + str(port).encode() + b"\r\n"
        b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Key: " + key + b"\r\nAuthorization: Bearer " + token.encode() + b"\r\n"
        b"Origin: http://127.0.0.1:" + str(port).encode() + b"\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(request)
        head = b""
        while b"\r\n" not in head:
            chunk = conn.recv(4096)
            if not chunk:
                return 0
            head += chunk
        status = int(head.split(b" ", 2)[1])
        if status == 101:
            conn.settimeout(0.2)
            with contextlib.suppress(TimeoutError):
                conn.recv(65536)  # the greeting and catch-up
        return status


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0, help="default: a free port")
    args = parser.parse_args()
    port = args.port or free_port()
    base = f"http://127.0.0.1:{port}"
    password = secrets.token_urlsafe(16)
    tmp = tempfile.mkdtemp(prefix="tooltrail-hostile-")
    os.environ.update(TOOLTRAIL_VAR_DIR=tmp, DJANGO_SETTINGS_MODULE="tooltrail.settings")
    os.environ.pop("DATABASE_URL", None)
    proc = None
    try:
        started = time.monotonic()
        proc, launcher_lines = start_stack(tmp, port, password)
        print(f"stack up at {base} in {time.monotonic() - started:.1f} s", flush=True)
        import django

        django.setup()
        from tests.hostile_table import (
            BODIES,
            NESTED,
            QUERIES,
            WS_PATHS,
            WS_QUERIES,
            paths_for,
            routes,
        )

        token = manage(tmp, "create_api_token", "--user", "admin").strip().splitlines()[-1]
        session = login(base, password)
        session.headers["X-Caller"] = "admin session"
        anonymous = httpx.Client(
            base_url=base, timeout=60, follow_redirects=False, headers={"X-Caller": "anonymous"}
        )
        bearer = httpx.Client(
            base_url=base,
            timeout=60,
            follow_redirects=False,
            headers={"Authorization": f"Bearer {token}", "X-Caller": "bearer token"},
        )
        run = bearer.post("/api/runs", json={"agent": "demo", "input": "hostile check"})
        assert run.status_code == 201, run.text
        trace = run.json()["id"]

        tally = Tally()
        started = time.monotonic()
        # Logging out and revoking tokens would leave the rest of the table to an anonymous
        # caller: those routes last.
        ordered = sorted(routes(), key=lambda r: r[0].startswith(("/accounts/logout", "/tokens/")))
        for route, converters in ordered:
            paths = paths_for(route, converters, trace)
            for path in paths:
                for client in (session, anonymous, bearer):
                    tally.send(client, "GET", path)
                    tally.send(client, "POST", path, data={})
            for query in QUERIES:
                tally.send(session, "GET", paths[0] + query)
            for content_type, body in BODIES:
                for client in (session, bearer):
                    tally.send(
                        client,
                        "POST",
                        paths[0],
                        content=body.encode() if isinstance(body, str) else body,
                        headers={"Content-Type": content_type},
                    )
        session = login(base, password)  # the logout route ended the first session
        session.headers["X-Caller"] = "admin session"
        big = json.dumps({"agent": "demo", "input": "x" * 3_000_000})
        tally.send(
            bearer, "POST", "/api/runs", content=big, headers={"Content-Type": "application/json"}
        )
        tally.send(
            bearer,
            "POST",
            "/api/runs",
            content=NESTED,
            headers={"Content-Type": "application/json"},
        )
        tally.send(session, "POST", "/agents/demo/run/", data={"input": "x" * 3_000_000})
        http_seconds = time.monotonic() - started

        token = manage(tmp, "create_api_token", "--user", "admin").strip().splitlines()[-1]
        sockets: Counter[int] = Counter()
        for path in WS_PATHS:
            for query in WS_QUERIES:
                target = path.replace("{trace}", trace).encode() + (b"?" + query if query else b"")
                status = websocket_handshake(port, target, token)
                sockets[status] += 1
                if status >= 500:
                    tally.problems.append(f"websocket {target[:80]!r} → {status}")

        # Healthy afterwards: health as staff, a demo run to its end, nothing restarted.
        health = session.get("/healthz")
        if health.status_code != 200 or not health.json().get("ok"):
            tally.problems.append(f"/healthz afterwards → {health.status_code} {health.text[:300]}")
        # The session: the table's POSTs to the tokens pages may have revoked the token.
        after = session.post("/api/runs", json={"agent": "demo", "input": "still alive?"})
        status = f"not started ({after.status_code} {after.text[:200]})"
        if after.status_code == 201:
            trace_after = after.json()["id"]
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                status = session.get(f"/api/traces/{trace_after}").json()["status"]
                if status in ("succeeded", "failed", "cancelled"):
                    break
                time.sleep(0.2)
        if status != "succeeded":
            tally.problems.append(f"a demo run afterwards ended {status!r}")
        noise = [line for line in launcher_lines if re.search(r"restart|exited|stopping", line)]
        tally.problems += [f"launcher: {line}" for line in noise]
        if proc.poll() is not None:
            tally.problems.append(f"the launcher exited with {proc.returncode}")

        requests = sum(tally.statuses.values())
        print(f"http requests: {requests} in {http_seconds:.1f} s")
        print(
            "http answers by status: "
            + ", ".join(f"{k}: {v}" for k, v in sorted(tally.statuses.items()))
        )
        for caller, statuses in tally.by_caller.items():
            print(f"  {caller}: " + ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items())))
        print(
            f"websocket handshakes: {sum(sockets.values())}; by status: "
            + ", ".join(f"{k}: {v}" for k, v in sorted(sockets.items()))
        )
        print(f"afterwards: /healthz {health.status_code}, demo run {status}")
        for problem in tally.problems[:50]:
            print(f"PROBLEM {problem}")
        print(f"server_errors={len(tally.problems)}")
        return 1 if tally.problems else 0
    finally:
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
