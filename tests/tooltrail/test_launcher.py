"""`make up`'s launcher, for real: embedded Redis, migrations, demo data, an admin,
Daphne and the workers from nothing, then Ctrl-C stops every process it started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from tooltrail import launcher

pytestmark = pytest.mark.integration


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


def test_up_starts_everything_on_embedded_defaults_and_ctrl_c_stops_it(tmp_path):
    port = launcher.free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}
    }
    env.update(
        PORT=str(port),
        TOOLTRAIL_VAR_DIR=str(tmp_path / "var"),
        TOOLTRAIL_ADMIN_PASSWORD="launcher-test-pw-1",
        PYTHONUNBUFFERED="1",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "tooltrail.launcher", "up"],
        cwd=launcher.BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output: list[str] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
            output.append(line)
            if "Tooltrail is running at" in line:
                break
        text = "".join(output)
        assert f"Tooltrail is running at http://127.0.0.1:{port}/" in text, text[-3000:]
        assert "Admin login: admin (password from TOOLTRAIL_ADMIN_PASSWORD)" in text
        assert (tmp_path / "var" / "tooltrail.sqlite3").exists()

        health = {}
        while time.monotonic() < deadline:
            response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
            health = response.json()
            if response.status_code == 200:
                break
            time.sleep(0.5)
        assert health.get("ok") is True, health
        assert health["workers"]["queues"] == ["agents", "gpu"]

        login = httpx.get(f"http://127.0.0.1:{port}/agents/", timeout=5)
        assert login.status_code == 302  # every page asks for a login

        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert not launcher.port_in_use(port), "Daphne outlived the launcher"
    assert processes_with_env(f"TOOLTRAIL_VAR_DIR={tmp_path}") == [], (
        "a child outlived the launcher"
    )
    assert not (tmp_path / "var" / "embedded_redis_url").exists()
