"""The tool list page searches with the retrieval index and marks what matched."""

from __future__ import annotations

import pytest
from django.urls import reverse

from toolsapp.models import Tool

pytestmark = pytest.mark.django_db


@pytest.fixture
def logged_in(client, make_user):
    client.force_login(make_user("reader", role="annotator"))
    return client


def test_a_search_ranks_tools_and_marks_the_matching_words(logged_in):
    Tool.objects.create(
        name="getAvailableRooms", description="Find hotel rooms free on given dates"
    )
    Tool.objects.create(name="getWeather", description="Weather forecast for a city")
    Tool.objects.create(name="sendEmail", description="Send an <email> to someone")

    page = logged_in.get(reverse("toolsapp:tool_list"), {"q": "free hotel room"}).content.decode()

    assert page.index("getAvailable") < page.index("getWeather")
    assert "getAvailable<mark>Rooms</mark>" in page
    assert "Find <mark>hotel</mark> <mark>rooms</mark> <mark>free</mark>" in page
    assert "&lt;email&gt;" in page  # descriptions stay escaped
    assert 'value="free hotel room"' in page


def test_search_keeps_the_kind_filter(logged_in):
    Tool.objects.create(name="hotelSearch", description="Find a hotel", kind=Tool.Kind.PYTHON)
    Tool.objects.create(
        name="hotelBook", description="Book a hotel", kind=Tool.Kind.CODE, status="draft"
    )
    page = logged_in.get(reverse("toolsapp:tool_list"), {"q": "hotel", "kind": "code"})
    assert [t.name for t in page.context["tools"]] == ["hotelBook"]
