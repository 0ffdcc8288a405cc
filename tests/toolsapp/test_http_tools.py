"""Calling imported HTTP tools against a real HTTP server, and the commands around them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from toolsapp.executors import ToolExecutionError, ToolTimeout
from toolsapp.models import HttpToolSource, Tool, Toolset
from toolsapp.services import builtin_tools_sync, tool_execute, tool_import_openapi
from toolsapp.validation import ToolArgumentsError

from .echo_server import echo_server

pytestmark = pytest.mark.django_db

PETSTORE = Path(__file__).parent / "data" / "openapi" / "petstore31.yaml"


@pytest.fixture(scope="module")
def server():
    with echo_server() as url:
        yield url


@pytest.fixture
def pets(server):
    tool_import_openapi(name="pets", location=str(PETSTORE), base_url=server + "/v1")
    return {t.name: t for t in Tool.objects.filter(source="openapi:pets")}


def test_path_query_and_header_parameters_go_where_the_spec_says(pets):
    result = tool_execute(
        tool=pets["listPets"], arguments={"limit": 5, "tags": ["a b", "c"], "X-Trace": "t-1"}
    )
    assert result["status"] == 200
    echo = result["body"]
    assert echo["method"] == "GET" and echo["path"] == "/v1/pets"
    assert echo["query"] == [["limit", "5"], ["tags", "a b"], ["tags", "c"]]
    assert echo["headers"]["x-trace"] == "t-1"
    # A subset of the headers comes back, not all of them.
    assert result["headers"]["x-ratelimit-remaining"] == "41"
    assert "x-internal-secret-header" not in result["headers"]

    shown = tool_execute(tool=pets["showPetById"], arguments={"petId": "a/b c"})
    assert shown["body"]["path"] == "/v1/pets/a%2Fb%20c"


def test_a_json_body_is_sent_as_json_and_a_form_body_as_a_form(pets):
    created = tool_execute(
        tool=pets["createPet"], arguments={"name": "rex", "owner": {"email": "a@b.c"}}
    )["body"]
    assert created["method"] == "POST"
    assert created["headers"]["content-type"] == "application/json"
    assert json.loads(created["body"]) == {"name": "rex", "owner": {"email": "a@b.c"}}

    updated = tool_execute(
        tool=pets["updatePet"], arguments={"petId": "7", "body": {"name": "rex", "petId": "7"}}
    )["body"]
    assert updated["path"] == "/v1/pets/7" and json.loads(updated["body"])["petId"] == "7"

    photo = tool_execute(
        tool=pets["post_pets_petId_photo"],
        arguments={"petId": "7", "caption": "hi there", "width": 3},
    )["body"]
    assert photo["headers"]["content-type"] == "application/x-www-form-urlencoded"
    assert photo["body"] == "caption=hi+there&width=3"


def test_arguments_that_break_the_schema_never_reach_the_api(pets):
    with pytest.raises(ToolArgumentsError, match="'name' is a required property"):
        tool_execute(tool=pets["createPet"], arguments={"tag": "x"})
    with pytest.raises(ToolArgumentsError, match="limit: 0 is less than the minimum of 1"):
        tool_execute(tool=pets["listPets"], arguments={"limit": 0})


def test_auth_comes_from_the_named_environment_variable(pets, monkeypatch):
    source = HttpToolSource.objects.get(name="pets")
    source.auth, source.auth_name, source.secret_env = "api_key_header", "X-Api-Key", "PETS_KEY"
    source.save()
    with pytest.raises(ToolExecutionError, match="environment variable PETS_KEY .* is not set"):
        tool_execute(tool=Tool.objects.get(pk=pets["listPets"].pk), arguments={})
    monkeypatch.setenv("PETS_KEY", "s3cret")
    echo = tool_execute(tool=Tool.objects.get(pk=pets["listPets"].pk), arguments={})["body"]
    assert echo["headers"]["x-api-key"] == "s3cret"

    source.auth = "bearer"
    source.save()
    echo = tool_execute(tool=Tool.objects.get(pk=pets["listPets"].pk), arguments={})["body"]
    assert echo["headers"]["authorization"] == "Bearer s3cret"

    source.auth, source.auth_name = "api_key_query", "key"
    source.save()
    echo = tool_execute(tool=Tool.objects.get(pk=pets["listPets"].pk), arguments={"limit": 2})[
        "body"
    ]
    assert echo["query"] == [["limit", "2"], ["key", "s3cret"]]
    assert "s3cret" not in json.dumps(list(HttpToolSource.objects.values()), default=str)


def test_status_bodies_sizes_and_deadlines(pets, settings):
    show = pets["showPetById"]
    missing = tool_execute(tool=show, arguments={"petId": "missing"})
    assert missing["status"] == 404  # an API's "no" is a result the model reads
    text = tool_execute(tool=show, arguments={"petId": "text"})
    assert text["body"] == "caf\u00e9"
    settings.TOOLTRAIL_HTTP_TOOL_MAX_BYTES = 100_000
    with pytest.raises(ToolExecutionError, match="larger than the 100000 byte limit"):
        tool_execute(tool=show, arguments={"petId": "huge"})
    with pytest.raises(ToolTimeout, match="did not answer within 0.5 s"):
        tool_execute(tool=show, arguments={"petId": "slow"}, timeout=0.5)


def test_an_unreachable_api_is_a_clear_error(pets):
    source = HttpToolSource.objects.get(name="pets")
    source.base_url = "http://127.0.0.1:9/v1"
    source.save()
    with pytest.raises(ToolExecutionError, match=r"GET http://127.0.0.1:9/v1/pets failed"):
        tool_execute(tool=Tool.objects.get(pk=pets["listPets"].pk), arguments={})


def test_call_tool_validates_and_calls_through_the_same_path(pets, capsys):
    call_command("call_tool", "showPetById", "--source", "pets", "--args", '{"petId": "9"}')
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["status"] == 200 and result["body"]["path"] == "/v1/pets/9"

    builtin_tools_sync()
    call_command("call_tool", "calculator", "--args", '{"expression": "6*7"}')
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["result"] == 42

    with pytest.raises(
        CommandError, match="arguments break the tool's schema: petId: 9 is not of type 'string'"
    ):
        call_command(
            "call_tool", "showPetById", "--source", "openapi:pets", "--args", '{"petId": 9}'
        )
    with pytest.raises(CommandError, match="there is no tool source named 'nope'"):
        call_command("call_tool", "showPetById", "--source", "nope", "--args", "{}")
    with pytest.raises(CommandError, match="arguments are not valid JSON"):
        call_command("call_tool", "showPetById", "--source", "pets", "--args", "{petId")


def test_call_tool_asks_for_a_source_when_a_name_is_ambiguous(pets, server):
    tool_import_openapi(name="zoo", location=str(PETSTORE), base_url=server + "/v1")
    with pytest.raises(CommandError, match="2 tools are named 'listPets'.*pass --source"):
        call_command("call_tool", "listPets", "--args", "{}")


def test_export_tools_prints_one_openai_entry_per_line(pets, capsys, server):
    call_command("export_tools", "--source", "openapi:pets")
    lines = capsys.readouterr().out.splitlines()
    entries = [json.loads(line) for line in lines]
    assert len(entries) == 7
    assert {e["function"]["name"] for e in entries} == set(pets)
    assert all(set(e) == {"type", "function"} and e["type"] == "function" for e in entries)
    assert all(set(e["function"]) == {"name", "description", "parameters"} for e in entries)

    # A toolset with two tools of one name: each gets a name unique in the toolset.
    tool_import_openapi(name="zoo", location=str(PETSTORE), base_url=server + "/v1")
    toolset = Toolset.objects.create(name="Both", slug="both")
    toolset.tools.add(pets["listPets"], Tool.objects.get(source="openapi:zoo", name="listPets"))
    toolset.tools.add(Tool.objects.get(source="openapi:zoo", name="plantTree"))
    call_command("export_tools", "--toolset", "both")
    names = [json.loads(line)["function"]["name"] for line in capsys.readouterr().out.splitlines()]
    assert sorted(names) == ["pets__listPets", "plantTree", "zoo__listPets"]

    with pytest.raises(CommandError, match="there is no toolset 'nope'"):
        call_command("export_tools", "--toolset", "nope")


def test_a_cancelled_run_stops_waiting_for_the_api(pets):
    import threading

    from toolsapp.executors import ToolCancelled

    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    with pytest.raises(ToolCancelled, match="cancelled during the HTTP call"):
        tool_execute(tool=pets["showPetById"], arguments={"petId": "slow"}, cancel=cancel)
