"""/healthz: database, Redis and a live worker on the agents queue.

Each test gets its own real Redis server, so a worker announced by another test
session on a shared Redis cannot make "no worker" look healthy.
"""

from __future__ import annotations

import json
import time

import pytest
import redis

from tooltrail import launcher
from tooltrail.health import WORKER_KEY_PREFIX

pytestmark = pytest.mark.django_db


@pytest.fixture
def private_redis(settings):
    with launcher.embedded_redis() as url:
        settings.REDIS_URL = url
        yield redis.Redis.from_url(url)


def announce_worker(client: redis.Redis, hostname: str, queues: list[str]) -> None:
    """What agents.upkeep writes from a live worker."""
    client.set(
        WORKER_KEY_PREFIX + hostname,
        json.dumps({"hostname": hostname, "queues": queues, "at": time.time()}),
        ex=15,
    )


@pytest.fixture
def staff(client, make_user):
    client.force_login(make_user("root", "admin"))


def test_anonymous_callers_learn_only_up_or_down(client, private_redis):
    """Asked without a login, as a load balancer does."""
    assert client.get("/healthz").json() == {"ok": False}
    announce_worker(private_redis, "agents@box-1", ["agents"])
    response = client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"ok": True})


def test_a_viewer_learns_only_up_or_down(client, private_redis, make_user):
    client.force_login(make_user("vic", "viewer"))
    assert client.get("/healthz").json() == {"ok": False}


def test_it_is_healthy_with_a_worker_on_the_agents_queue(client, private_redis, staff):
    announce_worker(private_redis, "agents@box-1", ["agents"])
    announce_worker(private_redis, "gpu@box-2", ["gpu"])

    response = client.get("/healthz")

    assert response.status_code == 200
    report = response.json()
    assert report["ok"] is True
    assert report["database"]["ok"] and report["redis"]["ok"]
    assert report["workers"] == {
        "ok": True,
        "count": 2,
        "queues": ["agents", "gpu"],
        "hosts": ["agents@box-1", "gpu@box-2"],
    }
    assert "no-cache" in response["Cache-Control"]


def test_it_names_the_missing_worker(client, private_redis, staff):
    response = client.get("/healthz")
    assert response.status_code == 503
    report = response.json()
    assert report["ok"] is False
    assert report["database"]["ok"] and report["redis"]["ok"]
    assert report["workers"]["error"] == "no live worker consumes the agents queue"


def test_a_gpu_worker_alone_does_not_make_it_healthy(client, private_redis, staff):
    announce_worker(private_redis, "gpu@box-2", ["gpu"])
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["workers"]["queues"] == ["gpu"]


def test_it_reports_redis_that_cannot_be_reached(client, settings, staff):
    settings.REDIS_URL = f"redis://127.0.0.1:{launcher.free_port()}/0"
    response = client.get("/healthz")
    assert response.status_code == 503
    report = response.json()
    assert report["redis"]["ok"] is False
    assert report["redis"]["error"]
    assert report["database"]["ok"] is True
