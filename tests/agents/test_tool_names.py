"""An agent whose toolset holds two tools of one name (two APIs' ``listPets``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.models import Agent, ModelEndpoint
from agents.runner import trace_run
from tests.toolsapp.echo_server import echo_server
from toolsapp.models import Tool, Toolset
from toolsapp.services import tool_import_openapi
from traces.models import Step
from traces.services import trace_create

pytestmark = pytest.mark.django_db(transaction=True)

PETSTORE = Path(__file__).parents[1] / "toolsapp" / "data" / "openapi" / "petstore31.yaml"


def test_the_model_sees_unique_names_and_each_call_reaches_the_right_api():
    with echo_server() as url:
        tool_import_openapi(name="pets", location=str(PETSTORE), base_url=url + "/pets-api")
        tool_import_openapi(name="zoo", location=str(PETSTORE), base_url=url + "/zoo-api")
        toolset = Toolset.objects.create(name="Two stores", slug="two-stores")
        toolset.tools.add(*Tool.objects.filter(name__in=["listPets", "showPetById"]))
        endpoint = ModelEndpoint.objects.create(
            name="script",
            kind=ModelEndpoint.Kind.SCRIPTED,
            config={
                "script": [
                    {
                        "content": "",
                        "tool_calls": [
                            {"name": "zoo__listPets", "arguments": {"limit": 3}},
                            {"name": "listPets", "arguments": {}},
                        ],
                    },
                    {"content": "Done."},
                ]
            },
        )
        agent = Agent.objects.create(name="Two", slug="two", endpoint=endpoint, toolset=toolset)
        trace = trace_create(
            name=agent.name, input="List", agent_slug=agent.slug, metadata={"agent_id": agent.id}
        )
        trace_run(trace_id=trace.id)

    steps = list(Step.objects.filter(trace=trace).order_by("seq"))
    assert sorted(steps[0].input["tools"]) == [
        "pets__listPets",
        "pets__showPetById",
        "zoo__listPets",
        "zoo__showPetById",
    ]
    call, result = steps[1], steps[2]
    assert (call.kind, call.name) == (Step.Kind.TOOL_CALL, "zoo__listPets")
    assert call.metadata["tool"]["source"] == "openapi:zoo"
    assert call.metadata["tool"]["name"] == "listPets"
    assert result.output["body"]["path"] == "/zoo-api/pets"
    assert result.output["body"]["query"] == [["limit", "3"]]
    # The bare name is ambiguous here, so the model is told which names exist.
    unknown = steps[4]
    assert unknown.kind == Step.Kind.ERROR and unknown.name == "unknown_tool"
    assert "pets__listPets" in unknown.error
