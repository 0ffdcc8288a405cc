"""Management commands a person types: tokens, runs, demo data, the first admin."""

from __future__ import annotations

import io
import os
import re

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from agents.models import Agent, ModelEndpoint
from toolsapp.models import Tool, Toolset
from traces.models import Trace

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_create_api_token_prints_a_token_that_works(client, make_user, demo_agents):
    make_user("ci-bot", "annotator")
    raw = run("create_api_token", "--user", "ci-bot").strip()
    assert raw.startswith("tt_")
    response = client.post(
        "/api/runs",
        data={"agent": "demo", "input": "What is 2+2?"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {raw}",
    )
    assert response.status_code == 201
    assert Trace.objects.get().created_by.username == "ci-bot"


def test_create_api_token_names_an_unknown_user():
    with pytest.raises(CommandError, match="no user named 'ghost'"):
        run("create_api_token", "--user", "ghost")


def test_run_agent_with_an_unknown_slug_lists_the_agents(demo_agents):
    with pytest.raises(CommandError, match="no agent 'nope'; agents: demo, local"):
        run("run_agent", "--agent", "nope", "--input", "hi")
    assert not Trace.objects.exists()


def test_run_agent_queues_a_run_and_prints_where_to_watch_it(demo_agents, settings):
    settings.SITE_URL = "http://tooltrail.example"
    out = run("run_agent", "--agent", "demo", "--input", "What is 2+2?")
    trace = Trace.objects.get()
    assert trace.status == Trace.Status.QUEUED
    assert trace.input == "What is 2+2?"
    assert out.splitlines() == [f"trace {trace.id}", f"http://tooltrail.example/traces/{trace.id}/"]


def test_run_agent_refuses_an_empty_input(demo_agents):
    with pytest.raises(CommandError, match="the input is empty"):
        run("run_agent", "--agent", "demo", "--input", " ")
    assert not Trace.objects.exists()


def test_seed_demo_can_run_again_without_duplicating_anything():
    first = run("seed_demo")
    counts = (
        Agent.objects.count(),
        ModelEndpoint.objects.count(),
        Tool.objects.count(),
        Toolset.objects.count(),
    )
    traces = Trace.objects.count()
    Agent.objects.filter(slug="demo").update(max_steps=1)
    second = run("seed_demo")
    assert first == (
        "Demo data ready: agents demo, local; 6 demo runs added; "
        "roles admin, builder, annotator, viewer.\n"
    )
    assert second == first.replace("6 demo runs", "0 demo runs")
    # Six finished runs of the demo agents (the annotation demo adds its own traces).
    assert Trace.objects.count() == traces
    assert Trace.objects.filter(metadata__demo_runs=True).count() == 6
    assert (
        counts
        == (
            Agent.objects.count(),
            ModelEndpoint.objects.count(),
            Tool.objects.count(),
            Toolset.objects.count(),
        )
        == (2, 2, 5, 1)
    )
    assert Agent.objects.get(slug="demo").max_steps == 8
    assert Agent.objects.get(slug="local").endpoint.kind == ModelEndpoint.Kind.LOCAL


def test_ensure_admin_takes_the_password_from_the_environment(client, monkeypatch):
    monkeypatch.setenv("TOOLTRAIL_ADMIN_PASSWORD", "correct-horse-battery")
    out = run("ensure_admin")
    assert out.strip() == "Admin login: admin (password from TOOLTRAIL_ADMIN_PASSWORD)"
    assert "correct-horse-battery" not in out
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff
    assert admin.groups.filter(name="admin").exists()
    assert client.login(username="admin", password="correct-horse-battery")


def test_ensure_admin_leaves_an_existing_admin_alone(client, monkeypatch):
    monkeypatch.setenv("TOOLTRAIL_ADMIN_PASSWORD", "first-password-1")
    run("ensure_admin")
    monkeypatch.setenv("TOOLTRAIL_ADMIN_PASSWORD", "second-password-2")
    out = run("ensure_admin")
    assert out.strip() == "Admin login: admin (already exists; password unchanged)"
    assert client.login(username="admin", password="first-password-1")
    assert get_user_model().objects.count() == 1


def test_ensure_admin_without_a_password_prints_a_generated_one_once(client, monkeypatch):
    monkeypatch.delenv("TOOLTRAIL_ADMIN_PASSWORD", raising=False)
    out = run("ensure_admin", "--username", "boss")
    password = re.fullmatch(
        r"Admin login: boss / (\S+)   \(shown once; change it in /admin/\)\n", out
    )
    assert password, out
    assert client.login(username="boss", password=password.group(1))


def test_site_url_defaults_to_the_port_and_can_be_set(monkeypatch):
    import subprocess
    import sys

    def site_url(**env) -> str:
        code = "import django; django.setup(); from django.conf import settings; print(settings.SITE_URL)"
        environ = {
            k: v
            for k, v in os.environ.items()
            if k not in ("SITE_URL", "PORT", "TOOLTRAIL_BASE_URL")
        }
        return subprocess.run(
            [sys.executable, "-c", code],
            # A SECRET_KEY, as production settings refuse to start on a server database
            # without one (the PostgreSQL pass sets DATABASE_URL).
            env={
                **environ,
                "DJANGO_SETTINGS_MODULE": "tooltrail.settings",
                "SECRET_KEY": "test-only",
                **env,
            },
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()

    assert site_url(PORT="8123") == "http://127.0.0.1:8123"
    assert site_url(SITE_URL="https://tt.example.org/", PORT="8123") == "https://tt.example.org"
