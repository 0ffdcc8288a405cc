"""The tool pages: list filters, the tool page with its try-it form and recent calls, and
the OpenAPI import page with its preview."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.urls import reverse

from toolsapp.models import HttpToolSource, Tool
from toolsapp.services import builtin_tools_sync, tool_import_openapi
from traces.models import Step
from traces.services import step_record, trace_create

from .echo_server import echo_server

pytestmark = pytest.mark.django_db

PETSTORE = Path(__file__).parent / "data" / "openapi" / "petstore31.yaml"


@pytest.fixture
def admin(client, make_user):
    client.force_login(make_user("root", "admin"))
    return client


@pytest.fixture
def viewer(client, make_user):
    client.force_login(make_user("vic", "viewer"))
    return client


def test_the_list_filters_by_kind_source_and_status(admin):
    builtin_tools_sync()
    tool_import_openapi(name="pets", location=str(PETSTORE))
    Tool.objects.filter(name="plantTree").update(status=Tool.Status.INACTIVE)
    url = reverse("toolsapp:tool_list")

    page = admin.get(url, {"source": "openapi:pets"}).content.decode()
    assert "listPets" in page and "calculator" not in page
    page = admin.get(url, {"kind": "python"}).content.decode()
    assert "calculator" in page and "listPets" not in page
    page = admin.get(url, {"status": "inactive"}).content.decode()
    assert "plantTree" in page and "listPets" not in page and "calculator" not in page
    # htmx asks for the rows only.
    rows = admin.get(url, {"source": "-"}, headers={"HX-Request": "true"}).content.decode()
    assert rows.lstrip().startswith('<div id="tool-rows">') and "calculator" in rows


def test_the_tool_page_shows_schema_source_and_a_form_from_the_schema(admin):
    tool_import_openapi(name="pets", location=str(PETSTORE), base_url="http://api.test/v1")
    tool = Tool.objects.get(source="openapi:pets", name="listPets")
    page = admin.get(tool.get_absolute_url()).content.decode()
    assert "GET http://api.test/v1/pets" in page
    assert 'name="arg:limit"' in page and 'type="number"' in page
    assert 'name="arg:tags"' in page  # an array: a JSON field
    assert "&quot;minimum&quot;: 1" in page


def test_try_it_runs_the_tool_through_validation_and_shows_the_result(admin):
    with echo_server() as url:
        tool_import_openapi(name="pets", location=str(PETSTORE), base_url=url + "/v1")
        tool = Tool.objects.get(source="openapi:pets", name="listPets")
        try_url = reverse("toolsapp:tool_try", args=[tool.name]) + "?source=openapi:pets"
        response = admin.post(try_url, {"arg:limit": "3", "arg:tags": '["a"]', "arg:X-Trace": ""})
    page = response.content.decode()
    assert response.status_code == 200
    assert "&quot;path&quot;: &quot;/v1/pets&quot;" in page
    assert "limit" in page and "&quot;3&quot;" in page

    bad = admin.post(try_url, {"arg:limit": "0"}, headers={"HX-Request": "true"})
    assert bad.status_code == 400
    assert "limit: 0 is less than the minimum of 1" in bad.content.decode()
    assert bad.content.decode().lstrip().startswith('<div id="try-result"')


def test_try_it_takes_a_whole_json_object_too(admin):
    builtin_tools_sync()
    tool = Tool.objects.get(name="calculator", source="")
    response = admin.post(
        reverse("toolsapp:tool_try", args=[tool.name]), {"arguments_json": '{"expression": "2+3"}'}
    )
    assert "&quot;result&quot;: 5" in response.content.decode()


def test_a_viewer_cannot_run_tools_or_import(viewer):
    builtin_tools_sync()
    response = viewer.post(
        reverse("toolsapp:tool_try", args=["calculator"]), {"arg:expression": "1"}
    )
    assert response.status_code == 403
    response = viewer.post(
        reverse("toolsapp:openapi_import"),
        {"action": "preview", "name": "pets", "spec_text": PETSTORE.read_text()},
    )
    assert response.status_code == 403 and not HttpToolSource.objects.exists()


def test_the_import_page_previews_before_it_saves(admin):
    url = reverse("toolsapp:openapi_import")
    with PETSTORE.open("rb") as spec:
        preview = admin.post(url, {"action": "preview", "name": "pets", "spec_file": spec})
    page = preview.content.decode()
    assert preview.status_code == 200
    assert 'data-testid="preview-created">7<' in page and "showPetById" in page
    assert not Tool.objects.exists()  # a preview saves nothing

    digest = page.split('name="digest" value="')[1].split('"')[0]
    saved = admin.post(
        url,
        {
            "action": "import",
            "name": "pets",
            "digest": digest,
            "file": "petstore31.yaml",
            "auth": "bearer",
            "secret_env": "PETS_TOKEN",
        },
    )
    assert saved.status_code == 302
    assert Tool.objects.filter(source="openapi:pets").count() == 7
    source = HttpToolSource.objects.get(name="pets")
    assert (source.auth, source.secret_env) == ("bearer", "PETS_TOKEN")

    # Pasted text of a changed spec: the preview says what changes.
    spec = PETSTORE.read_text().replace("summary: List pets", "summary: List all the pets")
    page = admin.post(
        url, {"action": "preview", "name": "pets", "spec_text": spec}
    ).content.decode()
    assert "1</strong> changed" in page and "already imported" in page


def test_the_import_page_names_the_problem_of_a_bad_spec(admin):
    response = admin.post(
        reverse("toolsapp:openapi_import"),
        {
            "action": "preview",
            "name": "old",
            "spec_text": json.dumps({"swagger": "2.0", "paths": {}}),
        },
    )
    assert response.status_code == 400
    assert "pasted spec at /swagger: is Swagger 2.0" in response.content.decode()
    response = admin.post(
        reverse("toolsapp:openapi_import"),
        {"action": "preview", "name": "x", "spec_location": "/no/such.yaml"},
    )
    assert response.status_code == 400 and "cannot be read" in response.content.decode()


def test_recent_calls_show_success_rate_and_latency(admin):
    builtin_tools_sync()
    calc = Tool.objects.get(name="calculator", source="")
    trace = trace_create(name="t", input="x")
    for i, ok in enumerate([True, True, False]):
        call = step_record(
            trace_id=trace.id,
            kind=Step.Kind.TOOL_CALL,
            name="calculator",
            input={"expression": str(i)},
            metadata={"tool": {"id": calc.pk, "name": "calculator", "source": ""}},
        )
        step_record(
            trace_id=trace.id,
            kind=Step.Kind.TOOL_RESULT if ok else Step.Kind.ERROR,
            name="calculator" if ok else "tool_error",
            parent=call,
            error="" if ok else "calculator failed: boom",
        )
    # A call of another tool that happens to share the name, from another source.
    step_record(
        trace_id=trace.id,
        kind=Step.Kind.TOOL_CALL,
        name="calculator",
        metadata={"tool": {"id": calc.pk + 1000, "name": "calculator", "source": "mcp:x"}},
    )
    page = admin.get(
        reverse("traces:tool_calls"),
        {"name": "calculator", "source": "", "tool": calc.pk},
        headers={"HX-Request": "true"},
    ).content.decode()
    assert "Last 3 calls" in page
    assert 'data-testid="success-rate">67%<' in page
    assert "calculator failed: boom" in page
