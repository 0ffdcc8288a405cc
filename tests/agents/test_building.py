"""Building agents, endpoints and toolsets from the app's own pages."""

from __future__ import annotations

import pytest

from agents.models import Agent, AgentVersion, ModelEndpoint
from toolsapp.models import Tool, Toolset
from traces.models import Trace
from traces.services import trace_finish

pytestmark = pytest.mark.django_db


@pytest.fixture
def builder(client, make_user):
    client.force_login(make_user("bob", "builder"))
    return client


@pytest.fixture
def viewer(client, make_user):
    client.force_login(make_user("vera", "viewer"))
    return client


ENDPOINT = {
    "name": "my-script",
    "kind": "scripted",
    "config": '{"script": [{"content": "OK"}]}',
    "price_per_1k_prompt_tokens": "0.5",
    "price_per_1k_completion_tokens": "1.5",
}


def test_a_builder_creates_an_endpoint_and_is_redirected_to_it(builder):
    response = builder.post("/endpoints/new/", ENDPOINT)
    endpoint = ModelEndpoint.objects.get(name="my-script")
    assert response.status_code == 302
    assert response["Location"] == f"/endpoints/{endpoint.pk}/"
    assert endpoint.config == {"script": [{"content": "OK"}]}
    assert str(endpoint.price_per_1k_completion_tokens) == "1.500000"


def test_bad_endpoint_input_is_explained_next_to_the_field_and_nothing_is_saved(builder):
    response = builder.post(
        "/endpoints/new/", {"name": "x", "kind": "openai", "config": "{not json"}
    )
    assert response.status_code == 400
    text = response.content.decode()
    assert "needs its base URL" in text
    assert "say which model to ask for" in text
    assert "Enter a valid JSON" in text
    assert not ModelEndpoint.objects.exists()


def test_a_viewer_sees_endpoints_but_cannot_create_one(viewer, demo_agents):
    assert viewer.get("/endpoints/").status_code == 200
    assert "New endpoint" not in viewer.get("/endpoints/").content.decode()
    response = viewer.post("/endpoints/new/", ENDPOINT)
    assert response.status_code == 403
    assert not ModelEndpoint.objects.filter(name="my-script").exists()


def test_test_connection_shows_latency_and_reply_after_a_redirect(builder):
    builder.post("/endpoints/new/", ENDPOINT)
    endpoint = ModelEndpoint.objects.get(name="my-script")
    response = builder.post(f"/endpoints/{endpoint.pk}/test/", follow=True)
    text = response.content.decode()
    assert response.redirect_chain == [(f"/endpoints/{endpoint.pk}/", 302)]
    assert "Connection OK in" in text and "The model said: &#x27;OK&#x27;" in text


def test_test_connection_shows_the_error_of_an_unreachable_server(builder):
    endpoint = ModelEndpoint.objects.create(
        name="nowhere",
        kind="openai",
        base_url="http://127.0.0.1:9/v1",
        model="m",
        config={"timeout": 2},
    )
    text = builder.post(f"/endpoints/{endpoint.pk}/test/", follow=True).content.decode()
    assert "Connection failed after" in text


def test_an_endpoint_an_agent_uses_is_not_deleted(builder, demo_agents):
    endpoint = demo_agents["demo"].endpoint
    response = builder.post(f"/endpoints/{endpoint.pk}/delete/", follow=True)
    assert "is used by Demo agent (scripted)" in response.content.decode()
    assert ModelEndpoint.objects.filter(pk=endpoint.pk).exists()


def test_an_unused_endpoint_is_duplicated_then_deleted(builder, demo_agents):
    endpoint = demo_agents["demo"].endpoint
    response = builder.post(f"/endpoints/{endpoint.pk}/duplicate/")
    copy = ModelEndpoint.objects.get(name="demo-script-copy")
    assert response["Location"] == f"/endpoints/{copy.pk}/edit/"
    assert copy.config == endpoint.config
    builder.post(f"/endpoints/{copy.pk}/delete/")
    assert not ModelEndpoint.objects.filter(pk=copy.pk).exists()


def test_a_builder_creates_an_agent_and_its_first_version(builder, demo_agents):
    response = builder.post(
        "/agents/new/",
        {
            "name": "Calc",
            "slug": "calc",
            "endpoint": demo_agents["demo"].endpoint_id,
            "toolset": Toolset.objects.get(slug="builtin").pk,
            "strategy": "function_calling",
            "system_prompt": "Use the calculator.",
            "max_steps": 4,
        },
    )
    assert response.status_code == 302 and response["Location"] == "/agents/calc/"
    agent = Agent.objects.get(slug="calc")
    version = agent.versions.get()
    assert version.number == 1
    assert version.snapshot["system_prompt"] == "Use the calculator."
    assert "calculator" in [t["name"] for t in version.snapshot["tools"]]
    page = builder.get("/agents/calc/").content.decode()
    assert "v1" in page and "No finished runs yet." in page


def test_an_agent_form_rejects_a_duplicate_slug_and_a_silly_step_budget(builder, demo_agents):
    response = builder.post(
        "/agents/new/",
        {
            "name": "X",
            "slug": "demo",
            "endpoint": demo_agents["demo"].endpoint_id,
            "strategy": "function_calling",
            "max_steps": 0,
        },
    )
    assert response.status_code == 400
    text = response.content.decode()
    assert "Agent with this Slug already exists." in text
    assert "between 1 and 100 model turns" in text


def test_editing_an_agent_makes_a_new_version_and_old_runs_keep_theirs(
    builder, make_user, demo_agents
):
    from agents.services import agent_run_start

    agent = demo_agents["demo"]
    first = agent_run_start(agent=agent, input="one")
    builder.post(
        "/agents/demo/edit/",
        {
            "name": agent.name,
            "endpoint": agent.endpoint_id,
            "toolset": agent.toolset_id,
            "strategy": agent.strategy,
            "system_prompt": "A new prompt.",
            "max_steps": 8,
        },
    )
    second = agent_run_start(agent=agent, input="two")
    v1 = AgentVersion.objects.get(pk=first.metadata["agent_version_id"])
    v2 = AgentVersion.objects.get(pk=second.metadata["agent_version_id"])
    assert (v1.number, v2.number) == (1, 2)
    assert v1.snapshot["system_prompt"] == "You are a helpful assistant. Use the tools."
    assert v2.snapshot["system_prompt"] == "A new prompt."
    # The slug is fixed once made: traces name their agent by it.
    assert Agent.objects.filter(slug="demo").exists()
    page = builder.get(f"/agents/demo/versions/{v1.number}/").content.decode()
    assert "You are a helpful assistant. Use the tools." in page and "one" in page


def test_an_agent_with_runs_is_not_deleted_but_a_fresh_copy_is(builder, demo_agents):
    from agents.services import agent_run_start

    agent_run_start(agent=demo_agents["demo"], input="hi")
    response = builder.post("/agents/demo/delete/", follow=True)
    assert "has 1 run: an agent with runs is kept" in response.content.decode()
    builder.post("/agents/demo/duplicate/")
    copy = Agent.objects.get(slug="demo-copy")
    assert copy.name == "Demo agent (scripted) (copy)"
    builder.post("/agents/demo-copy/delete/")
    assert not Agent.objects.filter(slug="demo-copy").exists()


def test_run_again_repeats_the_input_or_runs_an_edited_one(builder, demo_agents):
    from agents.services import agent_run_start

    first = agent_run_start(agent=demo_agents["demo"], input="original")
    response = builder.post(f"/traces/{first.id}/again/", {"input": "original"}, follow=True)
    assert "this run has not finished yet" in response.content.decode()
    assert Trace.objects.count() == 1
    trace_finish(trace_id=first.id, status=Trace.Status.SUCCEEDED, output="done")
    assert "original" in builder.get(f"/traces/{first.id}/again/").content.decode()
    response = builder.post(f"/traces/{first.id}/again/", {"input": "edited"})
    again = Trace.objects.exclude(pk=first.pk).get()
    assert response["Location"] == again.get_absolute_url()
    assert again.input == "edited"
    assert again.metadata["rerun_of"] == str(first.id)
    assert again.agent_slug == "demo"


def test_a_viewer_cannot_run_again(viewer, demo_agents):
    from agents.services import agent_run_start

    trace = agent_run_start(agent=demo_agents["demo"], input="x")
    trace_finish(trace_id=trace.id, status=Trace.Status.SUCCEEDED)
    assert viewer.post(f"/traces/{trace.id}/again/", {"input": "x"}).status_code == 403
    assert Trace.objects.count() == 1


def test_a_toolset_is_built_by_picking_tools_found_by_search(builder, demo_agents):
    calculator = Tool.objects.get(name="calculator", source="")
    page = builder.get("/toolsets/new/?q=arithmetic").content.decode()
    assert f'value="{calculator.pk}"' in page
    assert "unit_convert" not in page
    response = builder.post(
        "/toolsets/new/", {"name": "Maths", "slug": "maths", "tools": [calculator.pk]}
    )
    assert response["Location"] == "/toolsets/maths/"
    assert list(Toolset.objects.get(slug="maths").tools.all()) == [calculator]


def test_a_toolset_an_agent_uses_is_not_deleted(builder, demo_agents):
    response = builder.post("/toolsets/builtin/delete/", follow=True)
    assert "is used by" in response.content.decode()
    assert Toolset.objects.filter(slug="builtin").exists()


def test_a_finished_trace_page_offers_run_again_and_links_its_version(
    builder, make_user, client, demo_agents
):
    from agents.services import agent_run_start

    trace = agent_run_start(agent=demo_agents["demo"], input="x")
    trace_finish(trace_id=trace.id, status=Trace.Status.SUCCEEDED)
    page = builder.get(trace.get_absolute_url()).content.decode()
    assert 'data-testid="run-again"' in page
    assert 'href="/agents/demo/versions/1/"' in page
    builder.force_login(make_user("vic", "viewer"))
    assert 'data-testid="run-again"' not in builder.get(trace.get_absolute_url()).content.decode()
