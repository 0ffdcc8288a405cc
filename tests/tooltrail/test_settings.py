"""Production settings: a database server without SECRET_KEY refuses to start (a key
generated per host breaks sessions across servers); testserver is only for tests."""

from __future__ import annotations

import os
import subprocess
import sys

from tooltrail import launcher

PROBE = (
    "import django; django.setup(); from django.conf import settings; print(settings.ALLOWED_HOSTS)"
)


def run_settings(tmp_path, **env) -> subprocess.CompletedProcess:
    clean = {
        k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DATABASE_URL", "DEBUG"}
    }
    return subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=launcher.BASE_DIR,
        env={
            **clean,
            "DJANGO_SETTINGS_MODULE": "tooltrail.settings",
            "TOOLTRAIL_VAR_DIR": str(tmp_path),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_database_server_without_secret_key_refuses_to_start(tmp_path):
    refused = run_settings(tmp_path, DATABASE_URL="postgres://db.example/tooltrail")
    assert refused.returncode != 0
    assert "SECRET_KEY must be set when DATABASE_URL names a database server" in refused.stderr
    assert (
        run_settings(
            tmp_path, DATABASE_URL="postgres://db.example/x", SECRET_KEY="k" * 50
        ).returncode
        == 0
    )
    assert run_settings(tmp_path, DATABASE_URL="postgres://db.example/x", DEBUG="1").returncode == 0


def test_the_embedded_default_makes_an_owner_only_key_and_no_testserver(tmp_path):
    started = run_settings(tmp_path)
    assert started.returncode == 0, started.stderr
    assert "testserver" not in started.stdout
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0
    assert list(tmp_path.glob(".secret_key.*")) == []
