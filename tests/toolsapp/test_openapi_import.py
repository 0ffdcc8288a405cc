"""Importing OpenAPI specs as HTTP tools: names, schemas, re-imports, and bad specs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from django.core.management import CommandError, call_command
from jsonschema import Draft202012Validator

from toolsapp.importers.openapi import SpecError
from toolsapp.models import HttpToolSource, Tool
from toolsapp.services import openapi_import_plan, tool_import_openapi

pytestmark = pytest.mark.django_db

DATA = Path(__file__).parent / "data" / "openapi"
REAL_SPECS = [
    "apis.guru.json",
    "mineskin.org.json",
    "swagger.io-generator.json",
    "twilio_routes_v2.json",
]
PETSTORE = DATA / "petstore31.yaml"


def refs_in(node, found=None):
    found = [] if found is None else found
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                found.append(value)
            elif key not in ("enum", "const", "default", "example", "examples"):
                refs_in(value, found)
    elif isinstance(node, list):
        for value in node:
            refs_in(value, found)
    return found


def assert_self_contained(schema: dict) -> None:
    Draft202012Validator.check_schema(schema)
    defs = schema.get("$defs", {})
    for ref in refs_in(schema):
        assert ref.startswith("#/$defs/"), ref
        assert ref.removeprefix("#/$defs/") in defs, ref


@pytest.mark.parametrize("filename", REAL_SPECS)
def test_a_real_spec_becomes_one_valid_self_contained_tool_per_operation(filename):
    spec = json.loads((DATA / filename).read_text())
    operations = [
        (path, method)
        for path, item in spec["paths"].items()
        for method in item
        if method in ("get", "put", "post", "delete", "options", "head", "patch", "trace")
    ]
    result = tool_import_openapi(name="real", location=str(DATA / filename))

    tools = list(Tool.objects.filter(source="openapi:real"))
    assert result.summary()["operations"] == len(operations) == len(tools)
    assert {(t.config["path"], t.config["method"].lower()) for t in tools} == set(operations)
    for tool in tools:
        assert re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", tool.name)
        assert tool.kind == Tool.Kind.HTTP and tool.is_active
        assert_self_contained(tool.parameters)


def test_operation_ids_path_query_header_and_body_share_one_schema():
    tool_import_openapi(name="pets", location=str(PETSTORE))
    tools = {t.name: t for t in Tool.objects.filter(source="openapi:pets")}

    assert set(tools) == {
        "listPets",
        "createPet",
        "showPetById",
        "updatePet",
        "post_pets_petId_photo",  # no operationId: method + path
        "get_tree_by_id_a_name_that_breaks_OpenAI_s_rule",
        "plantTree",
    }
    assert set(tools["listPets"].parameters["properties"]) == {"limit", "tags", "X-Trace"}
    # A plain JSON object body: its properties sit beside the parameters.
    create = tools["createPet"].parameters
    assert set(create["properties"]) == {"name", "tag", "owner"}
    assert create["required"] == ["name"]
    assert create["properties"]["tag"]["type"] == ["string", "null"]
    # A body property named like a parameter (petId): the body is one property.
    update = tools["updatePet"].parameters
    assert set(update["properties"]) == {"petId", "body"}
    assert update["properties"]["petId"]["description"] == "The pet's id"
    # Form bodies join the schema the same way.
    photo = tools["post_pets_petId_photo"]
    assert photo.parameters["required"] == ["petId", "caption"]
    assert photo.config["body"]["media"] == "application/x-www-form-urlencoded"
    # Two parameters with one name: the later one is named after its location.
    assert set(
        tools["get_tree_by_id_a_name_that_breaks_OpenAI_s_rule"].parameters["properties"]
    ) == {
        "id",
        "header_id",
    }


def test_recursive_and_shared_schemas_live_under_the_tools_own_defs():
    tool_import_openapi(name="pets", location=str(PETSTORE))
    tree = Tool.objects.get(source="openapi:pets", name="plantTree").parameters
    assert tree["properties"]["children"]["items"] == {"$ref": "#/$defs/Tree"}
    assert tree["$defs"]["Tree"]["properties"]["children"]["items"] == {"$ref": "#/$defs/Tree"}
    validator = Draft202012Validator(tree)
    assert validator.is_valid({"label": "a", "children": [{"label": "b", "children": []}]})
    assert not validator.is_valid({"children": [{"label": 5}]})
    # The ECMAScript named groups of a pattern become Python's, so arguments can be checked.
    owner = Tool.objects.get(source="openapi:pets", name="createPet").parameters
    assert Draft202012Validator(owner).is_valid({"name": "rex", "owner": {"email": "a@b.c"}})
    assert not Draft202012Validator(owner).is_valid({"name": "rex", "owner": {"email": "nope"}})


def test_a_yaml_spec_and_a_pasted_json_one_import_alike():
    spec = yaml.safe_load(PETSTORE.read_text())
    from_yaml = tool_import_openapi(name="a", data=PETSTORE.read_bytes(), file="petstore31.yaml")
    from_json = tool_import_openapi(name="b", data=json.dumps(spec))
    assert from_yaml.summary()["created"] == from_json.summary()["created"] == 7
    a = {t.name: t.parameters for t in Tool.objects.filter(source="openapi:a")}
    b = {t.name: t.parameters for t in Tool.objects.filter(source="openapi:b")}
    assert a == b
    assert HttpToolSource.objects.get(name="a").base_url == "http://localhost:8080/v1"


def test_importing_again_updates_in_place_and_deactivates_what_left():
    first = tool_import_openapi(name="pets", location=str(PETSTORE)).summary()
    assert first == {
        "source": "pets",
        "operations": 7,
        "created": 7,
        "updated": 0,
        "unchanged": 0,
        "deactivated": 0,
    }
    stamps = dict(Tool.objects.filter(source="openapi:pets").values_list("name", "updated_at"))

    again = tool_import_openapi(name="pets", location=str(PETSTORE)).summary()
    assert again["unchanged"] == 7 and again["created"] == again["updated"] == 0
    assert (
        dict(Tool.objects.filter(source="openapi:pets").values_list("name", "updated_at")) == stamps
    )

    spec = yaml.safe_load(PETSTORE.read_text())
    spec["paths"]["/pets"]["get"]["summary"] = "List every pet"
    del spec["paths"]["/trees/{id}"]
    spec["paths"]["/owners"] = {"get": {"operationId": "listOwners", "responses": {}}}
    changed = tool_import_openapi(name="pets", data=json.dumps(spec)).summary()
    assert changed == {
        "source": "pets",
        "operations": 6,
        "created": 1,
        "updated": 1,
        "unchanged": 4,
        "deactivated": 2,
    }
    tools = {t.name: t for t in Tool.objects.filter(source="openapi:pets")}
    assert len(tools) == 8  # nothing deleted
    assert tools["listPets"].description == "List every pet"
    assert tools["plantTree"].status == Tool.Status.INACTIVE
    assert tools["listPets"].updated_at > stamps["listPets"]
    assert tools["showPetById"].updated_at == stamps["showPetById"]

    # Back again: the removed operations come back to life, no duplicates.
    back = tool_import_openapi(name="pets", location=str(PETSTORE)).summary()
    assert back["updated"] == 3 and back["deactivated"] == 1
    assert Tool.objects.filter(source="openapi:pets").count() == 8


def test_two_sources_may_both_have_a_tool_of_the_same_name():
    tool_import_openapi(name="one", location=str(PETSTORE))
    tool_import_openapi(name="two", location=str(PETSTORE))
    assert Tool.objects.filter(name="listPets").count() == 2


def test_the_preview_says_what_would_change_and_saves_nothing():
    plan = openapi_import_plan(name="pets", location=str(PETSTORE))
    assert len(plan.created) == 7
    assert not Tool.objects.exists() and not HttpToolSource.objects.exists()


def broken(spec_change) -> str:
    spec = yaml.safe_load(PETSTORE.read_text())
    spec_change(spec)
    return json.dumps(spec)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            lambda s: s["paths"]["/pets"]["post"]["requestBody"]["content"]["application/json"][
                "schema"
            ].update({"$ref": "#/components/schemas/Nope"}),
            r"at /paths/~1pets/post/requestBody/content/application~1json/schema/\$ref: "
            r"\$ref '#/components/schemas/Nope' points to nothing",
        ),
        (
            lambda s: s["components"]["schemas"]["Owner"]["properties"].update(
                {"age": {"type": "integer", "minimum": "ten"}}
            ),
            r"at /components/schemas/Owner/properties/age/minimum: schema is not valid JSON Schema",
        ),
        (
            lambda s: s["paths"]["/pets"]["get"]["parameters"].append({"in": "query"}),
            r"at /paths/~1pets/get/parameters/3: a parameter needs a 'name'",
        ),
        (lambda s: s.update({"paths": []}), r"at /paths: 'paths' must be an object"),
        (
            lambda s: s["components"]["schemas"]["Tree"].update({"$ref": "other.yaml#/Tree"}),
            r"at /components/schemas/Tree/\$ref: \$ref 'other.yaml#/Tree' points outside this file",
        ),
    ],
)
def test_a_broken_spec_names_the_file_and_pointer_and_changes_nothing(change, problem):
    tool_import_openapi(name="pets", location=str(PETSTORE))
    before = list(Tool.objects.values_list("name", "status", "updated_at", "parameters"))
    with pytest.raises(SpecError, match=r"^petstore\.json " + problem):
        tool_import_openapi(name="pets", data=broken(change), file="petstore.json")
    assert list(Tool.objects.values_list("name", "status", "updated_at", "parameters")) == before


def test_swagger_2_is_refused_clearly():
    spec = json.dumps({"swagger": "2.0", "info": {"title": "old"}, "paths": {}})
    with pytest.raises(
        SpecError, match=r"old\.json at /swagger: is Swagger 2\.0; only OpenAPI 3\.0 and 3\.1"
    ):
        tool_import_openapi(name="old", data=spec, file="old.json")


def test_text_that_is_no_spec_is_refused():
    with pytest.raises(SpecError, match=r"x\.json: is not valid JSON \(Expecting"):
        tool_import_openapi(name="x", data="{not json", file="x.json")
    with pytest.raises(SpecError, match="no 'openapi' version field"):
        tool_import_openapi(name="x", data="title: hello\n", file="x.yaml")
    with pytest.raises(SpecError, match="cannot be read"):
        tool_import_openapi(name="x", location="/nonexistent/spec.yaml")


def test_a_spec_over_the_operation_limit_is_refused(settings):
    settings.TOOLTRAIL_OPENAPI_MAX_OPERATIONS = 5
    with pytest.raises(SpecError, match="has 7 operations, more than the limit of 5"):
        tool_import_openapi(name="pets", location=str(PETSTORE))
    assert not Tool.objects.exists()


def test_the_command_prints_progress_and_a_json_summary_last(capsys):
    call_command(
        "import_openapi", str(PETSTORE), "--name", "pets", "--base-url", "http://api.test/v1"
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) > 1
    assert json.loads(lines[-1]) == {
        "source": "pets",
        "operations": 7,
        "created": 7,
        "updated": 0,
        "unchanged": 0,
        "deactivated": 0,
    }
    assert HttpToolSource.objects.get(name="pets").base_url == "http://api.test/v1"


def test_the_command_fails_on_a_bad_spec_naming_the_problem(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"swagger": "2.0", "paths": {}}))
    with pytest.raises(
        CommandError, match=r"nothing imported: .*bad\.json at /swagger: is Swagger 2\.0"
    ):
        call_command("import_openapi", str(bad), "--name", "bad")
    assert not HttpToolSource.objects.exists()


def test_a_bad_inline_parameter_schema_is_named_where_it_is():
    spec = yaml.safe_load(PETSTORE.read_text())
    spec["paths"]["/pets"]["get"]["parameters"][0]["schema"]["maximum"] = "lots"
    with pytest.raises(
        SpecError,
        match=r"at /paths/~1pets/get/parameters/0/schema/maximum: schema is not valid JSON Schema",
    ):
        tool_import_openapi(name="pets", data=json.dumps(spec), file="petstore.json")


def test_a_tool_edited_by_hand_is_updated_by_the_next_import():
    tool_import_openapi(name="pets", location=str(PETSTORE))
    tool = Tool.objects.get(source="openapi:pets", name="listPets")
    tool.description = "edited in the admin"
    tool.save()
    again = tool_import_openapi(name="pets", location=str(PETSTORE)).summary()
    assert again["updated"] == 1 and again["unchanged"] == 6
    assert Tool.objects.get(pk=tool.pk).description == "List pets"


def test_openapi_30_idioms_become_json_schema_2020_12():
    spec = {
        "openapi": "3.0.3",
        "info": {"title": "idioms", "version": "1"},
        "paths": {
            "x-codegen-contextRoot": "/api",  # an extension of the Paths object, not a path
            "/things": {
                "post": {
                    "operationId": "makeThing",
                    "x-internal": True,
                    "requestBody": {
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "discriminator": {"propertyName": "kind"},
                                    "properties": {
                                        "kind": {
                                            "type": "string",
                                            "enum": ["a", "b"],
                                            "nullable": True,
                                        },
                                        "size": {
                                            "type": "number",
                                            "minimum": 0,
                                            "exclusiveMinimum": True,
                                        },
                                        "file": {"type": "file"},
                                        "word": {"type": "string", "pattern": "^\\p{L}+$"},
                                        "x-note": {"type": "string"},
                                    },
                                }
                            }
                        }
                    },
                    "responses": {},
                }
            },
        },
    }
    tool_import_openapi(name="idioms", data=json.dumps(spec))
    (tool,) = Tool.objects.filter(source="openapi:idioms")
    props = tool.parameters["properties"]
    assert props["kind"] == {"type": ["string", "null"], "enum": ["a", "b", None]}
    assert props["size"] == {"type": "number", "exclusiveMinimum": 0}
    assert props["file"] == {"type": "string", "format": "binary"}
    assert "pattern" not in props["word"] and "pattern: ^\\p{L}+$" in props["word"]["description"]
    # "x-note" is a property name here, not an extension keyword: it stays.
    assert "x-note" in props


def test_the_command_fails_without_a_traceback(tmp_path):
    import os
    import subprocess
    import sys

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "openapi: 3.0.0\ninfo: {title: x, version: '1'}\npaths: {/a: {get: {parameters: [{in: query}]}}}\n"
    )
    # The spec is refused before any database is opened: a throw-away SQLite one is named.
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["TOOLTRAIL_VAR_DIR"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "manage.py", "import_openapi", str(bad), "--name", "bad"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 1
    assert f"{bad} at /paths/~1a/get/parameters/0: a parameter needs a 'name'" in done.stderr
    assert "Traceback" not in done.stderr
