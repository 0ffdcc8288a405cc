"""The dashboard at /: figures over a period, each linking to the runs behind it."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from agents.demo import demo_traces_seed
from agents.models import ModelEndpoint
from traces.models import Trace

pytestmark = pytest.mark.django_db


@pytest.fixture
def seeded(demo_agents):
    ModelEndpoint.objects.filter(name="demo-script").update(
        price_per_1k_prompt_tokens=1, price_per_1k_completion_tokens=2
    )
    return demo_traces_seed()


@pytest.fixture
def signed_in(client, make_user):
    client.force_login(make_user("vera", "viewer"))
    return client


def test_a_fresh_install_shows_the_demo_runs_on_the_dashboard(signed_in, seeded):
    response = signed_in.get("/")
    ctx = response.context
    assert response.status_code == 200
    assert ctx["outcomes"].total == 6
    assert (ctx["outcomes"].succeeded, ctx["outcomes"].failed, ctx["outcomes"].cancelled) == (
        3,
        2,
        1,
    )
    assert ctx["p50_ms"] is not None and ctx["p95_ms"] >= ctx["p50_ms"]
    by_agent = {a["name"]: a for a in ctx["by_agent"]}
    assert by_agent["demo"]["runs"] == 5 and by_agent["demo"]["failed"] == 2
    # 5 demo runs, each one model call of 180 prompt + 30 completion tokens at 1 and 2 per 1k.
    assert float(by_agent["demo"]["cost"]) == pytest.approx(5 * (0.18 + 0.06))
    assert float(by_agent["local"]["cost"]) == 0
    assert {e["name"] for e in ctx["by_endpoint"]} == {"demo-script", "local-smollm2"}
    slowest = ctx["slowest"][0]
    assert slowest["name"] == "sleep" and slowest["mean_ms"] == pytest.approx(2100, abs=1)
    failing = {t["name"]: t for t in ctx["failing"]}
    assert failing["calculator"]["failures"] == 1 and failing["calculator"]["calls"] == 3
    assert failing["unit_convert"]["failures"] == 1


def test_the_numbers_link_to_the_filtered_trace_list(signed_in, seeded):
    ctx = signed_in.get("/").context
    link = urlsplit(ctx["by_agent"][0]["failed_url"])
    query = parse_qs(link.query)
    assert link.path == "/traces/"
    assert query["agent"] == ["demo"] and query["status"] == ["failed"]
    assert query["since"][0].endswith("Z")
    assert parse_qs(urlsplit(ctx["failing"][0]["url"]).query)["tool"]
    html = signed_in.get("/").content.decode()
    assert ctx["links"]["failed"].replace("&", "&amp;") in html


def test_a_shorter_period_counts_only_its_runs(signed_in, seeded):
    ctx = signed_in.get("/?period=24h").context
    # Runs 30 h ago fall outside the last 24 hours.
    assert ctx["outcomes"].total == 5
    assert ctx["bucket"] == "hour" and len(ctx["series"]) in (24, 25)
    assert sum(b["runs"] for b in ctx["series"]) == 5


def test_an_unknown_period_falls_back_to_a_week_and_an_empty_install_is_calm(signed_in):
    response = signed_in.get("/?period=forever")
    assert response.status_code == 200
    assert response.context["period"] == "7d"
    assert response.context["outcomes"].total == 0
    assert "No runs in this period." in response.content.decode()
    assert not Trace.objects.exists()
