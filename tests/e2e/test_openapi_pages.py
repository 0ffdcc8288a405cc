"""A person imports an OpenAPI spec (preview, then save), opens one of its tools and runs
it from the generated form, in the browser against the running server."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.toolsapp.echo_server import echo_server

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PASSWORD = "pw-for-tests-123"
PETSTORE = Path(__file__).resolve().parents[1] / "toolsapp" / "data" / "openapi" / "petstore31.yaml"


def test_an_openapi_spec_is_previewed_saved_and_its_tool_tried(stack, page: Page, make_user):
    from toolsapp.models import Tool

    make_user("ada", role="admin", password=PASSWORD)
    page.goto(f"{stack.base_url}/accounts/login/")
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.goto(f"{stack.base_url}/tools/")

    with echo_server() as api:
        page.get_by_test_id("import-openapi").click()
        page.get_by_label("Source name (a slug)").fill("pets")
        page.get_by_label("Base URL").fill(api + "/v1")
        page.get_by_label("…or paste it").fill(PETSTORE.read_text())
        page.get_by_test_id("import-preview").click()
        preview = page.get_by_test_id("preview")
        expect(page.get_by_test_id("preview-created")).to_have_text("7")
        expect(preview).to_contain_text("showPetById")
        expect(preview).to_contain_text("GET /pets/{petId}")
        assert not Tool.objects.exists()

        page.get_by_test_id("import-save").click()
        expect(page.locator("#tool-rows")).to_contain_text("showPetById")
        assert Tool.objects.filter(source="openapi:pets").count() == 7

        page.get_by_role("link", name="showPetById").click()
        page.get_by_label("petId").fill("42")
        page.get_by_test_id("try-run").click()
        result = page.get_by_test_id("try-result")
        expect(result).to_contain_text('"path": "/v1/pets/42"')
        expect(result).to_contain_text('"status": 200')
