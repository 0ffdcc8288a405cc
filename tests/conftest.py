"""Shared fixtures.

Unit tests use the Django test database and the real Redis that `make test` provides
(the launcher's ``with-redis`` starts an embedded one when ``REDIS_URL`` is unset).

Integration tests (``@pytest.mark.integration``) get ``stack``: a real Daphne server
and a real Celery worker, separate processes reading the same test database. Such
tests must use ``@pytest.mark.django_db(transaction=True)`` so that what they write is
committed and visible to those processes.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings

from tooltrail import launcher


@pytest.fixture(autouse=True)
def _fast_heartbeats(settings):
    settings.TOOLTRAIL_HEARTBEAT_SECONDS = 0.5


@pytest.fixture(autouse=True)
def _private_tool_index(settings, tmp_path):
    """Each test its own saved tool index (the embedding model stays loaded)."""
    settings.TOOLTRAIL_TOOL_INDEX_PATH = tmp_path / "tool_index.npz"


# Python tools must be allow-listed (TOOLTRAIL_PYTHON_TOOLS); tests register functions
# from their own modules.
TEST_PYTHON_TOOLS = "tests.*"


@pytest.fixture(autouse=True)
def _test_python_tools(settings):
    settings.TOOLTRAIL_PYTHON_TOOLS = [*settings.TOOLTRAIL_PYTHON_TOOLS, TEST_PYTHON_TOOLS]


def _database_url_for(name: str) -> str:
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{Path(name).resolve()}"
    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path="/" + name))


@dataclass
class Stack:
    """The running server and worker(s) of one test session."""

    port: int
    env: dict[str, str]
    logdir: str
    workers: list = field(default_factory=list)
    daphne: object = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start_worker(self, *, queues: str = "agents", pool: str = "solo", name: str | None = None):
        logfile = os.path.join(self.logdir, f"worker-{len(self.workers)}.log")
        proc = launcher.start_worker(
            queues=queues, env=self.env, pool=pool, name=name, quiet=True, logfile=logfile
        )
        self.workers.append(proc)
        return proc

    def restart_daphne(self) -> None:
        launcher.stop(self.daphne)
        self.daphne = launcher.start_daphne(port=self.port, env=self.env, quiet=True)

    def kill_daphne(self) -> None:
        import signal

        launcher.stop(self.daphne, sig=signal.SIGKILL)

    def start_daphne(self) -> None:
        self.daphne = launcher.start_daphne(port=self.port, env=self.env, quiet=True)

    @staticmethod
    def wait_until(predicate, *, timeout: float = 30.0, what: str = ""):
        """Poll ``predicate`` until it returns something truthy (returned), or fail after
        ``timeout`` seconds: the other processes work at their own pace."""
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout:g} s waiting for {what or predicate}")


@pytest.fixture(scope="session")
def stack(django_db_setup, django_db_blocker):
    """Daphne + one Celery worker (agents and gpu queues) on the test database."""
    from tooltrail.celery import app

    with django_db_blocker.unblock():
        from django.db import connection

        name = connection.settings_dict["NAME"]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tooltrail.settings",
        "DATABASE_URL": _database_url_for(name),
        "REDIS_URL": settings.REDIS_URL,
        # The server signs and reads the test client's session cookies with this key.
        "SECRET_KEY": settings.SECRET_KEY,
        "TOOLTRAIL_HEARTBEAT_SECONDS": "0.5",
        "TOOLTRAIL_STALE_AFTER_SECONDS": "4",
        "TOOLTRAIL_TOOL_INDEX_PATH": os.path.join(tempfile.mkdtemp(), "tool_index.npz"),
        "TOOLTRAIL_PYTHON_TOOLS": TEST_PYTHON_TOOLS,
        "PYTHONUNBUFFERED": "1",
        # Models the session's worker writes (GPU jobs) stay out of the checkout's var/.
        "TOOLTRAIL_ARTIFACTS_DIR": tempfile.mkdtemp(prefix="tooltrail-test-artifacts-"),
    }
    app.control.purge()  # messages left by an earlier, interrupted session
    logdir = tempfile.mkdtemp(prefix="tooltrail-test-logs-")
    s = Stack(port=launcher.free_port(), env=env, logdir=logdir)
    s.start_daphne()
    s.start_worker(queues="agents,gpu", name=f"test-worker-{os.getpid()}@%h")
    yield s
    for proc in s.workers:
        launcher.stop(proc)
    launcher.stop(s.daphne)


# --- users, roles and tokens ----------------------------------------------------------


@pytest.fixture
def make_user(db):
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from tooltrail.services import roles_sync

    roles_sync()

    def make(username: str = "alice", role: str = "annotator", password: str = "pw-for-tests-123"):
        user = get_user_model().objects.create_user(username=username, password=password)
        if role == "admin":
            user.is_superuser = user.is_staff = True
            user.save()
        user.groups.add(Group.objects.get(name=role))
        return user

    return make


@pytest.fixture
def demo_agents(db):
    from agents.demo import demo_seed

    return demo_seed()


@pytest.fixture
def scripted_agent(db):
    """Make an agent on a scripted endpoint with the built-in tools: ``scripted_agent(script)``."""
    from agents.models import Agent, ModelEndpoint
    from toolsapp.models import Toolset
    from toolsapp.services import builtin_tools_sync

    builtin_tools_sync()
    counter = {"n": 0}

    def make(script: list[dict], *, max_steps: int = 10, slug: str | None = None) -> Agent:
        counter["n"] += 1
        n = counter["n"]
        endpoint = ModelEndpoint.objects.create(
            name=f"script-{n}", kind=ModelEndpoint.Kind.SCRIPTED, config={"script": script}
        )
        return Agent.objects.create(
            name=f"Scripted {n}",
            slug=slug or f"scripted-{n}",
            endpoint=endpoint,
            toolset=Toolset.objects.get(slug="builtin"),
            max_steps=max_steps,
        )

    return make
