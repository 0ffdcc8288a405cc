"""The web server and the agent workers do not load torch (or numpy) until a job (or an
agreement figure) needs it.

Daphne and every Celery worker import the URLconf (Django's checks do) and the task
modules, and so the training views and services. With torch loaded a worker child was
three times the size, and every tool call forks it (toolsapp.processes)."""

from __future__ import annotations

import os
import subprocess
import sys

from django.conf import settings

SCRIPT = """
import sys
import django
django.setup()
import tooltrail.asgi  # the server's application: URLconf, consumers, views
from tooltrail.celery import app
app.loader.import_default_modules()  # what a worker imports, Django's checks included
assert "agents.training.views" in sys.modules and "agents.training.merge" in sys.modules
print("torch" in sys.modules, "numpy" in sys.modules)
from agents.training.merge import config_parse  # first use loads the engine
print("torch" in sys.modules)
"""


def test_server_and_worker_start_without_torch_or_numpy():
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        timeout=120,
        # On a database server the settings want a SECRET_KEY: the test run's own.
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tooltrail.settings",
            "SECRET_KEY": settings.SECRET_KEY,
        },
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False", "True"]
