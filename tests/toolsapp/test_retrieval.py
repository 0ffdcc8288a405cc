"""The tool index: found by words, kept in step with the tools, persisted across restarts.

The dense model is the real MiniLM, loaded once per test session (the encoder keeps it
per process); each test has its own saved index file (``_private_tool_index``).
"""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command

from toolsapp.models import Tool
from toolsapp.retrieval import encoder
from toolsapp.retrieval.store import ToolIndexStore
from toolsapp.selectors import tool_search_rank
from toolsapp.services import tool_index_mark

pytestmark = pytest.mark.django_db

SEAL = Path(__file__).parent / "data" / "seal_tools"


def seal_tools(count: int | None = None) -> list[Tool]:
    """Tools of the Seal-Tools sample, as python tools (never called here)."""
    docs = [json.loads(line) for line in (SEAL / "corpus.jsonl").open()][:count]
    return [
        Tool.objects.create(
            name=doc["_id"],
            description=doc["text"],
            parameters={"type": "object", "properties": {}},
            config={"callable": "toolsapp.builtin:echo"},
        )
        for doc in docs
    ]


def names(tools: list[Tool]) -> list[str]:
    return [t.name for t in tools]


class CountingEmbedder:
    """The real encoder, counting the texts it is asked to embed."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def __call__(self, texts: list[str]):
        self.texts.extend(texts)
        return encoder.embed(texts)


def test_a_tool_is_found_by_the_words_of_its_name_and_description():
    seal_tools(30)
    Tool.objects.create(
        name="getWaterQuality",
        description="Retrieve the water quality of a lake, river or sea",
        parameters={
            "type": "object",
            "properties": {"location": {"type": "string", "description": "the body of water"}},
        },
    )
    for method in ("hybrid", "bm25", "dense"):
        found = tool_search_rank(query="how clean is the water in the lake?", k=3, method=method)
        assert found[0].name == "getWaterQuality", method


def test_search_follows_creates_updates_and_deletes_without_a_rebuild():
    seal_tools(20)
    assert "fetchTideTable" not in names(tool_search_rank(query="tide times", k=3))
    tide = Tool.objects.create(name="fetchTideTable", description="High and low tide times")
    assert names(tool_search_rank(query="tide times", k=3))[0] == "fetchTideTable"

    tide.description = "Phases of the moon for a date"
    tide.save()
    assert names(tool_search_rank(query="moon phase", k=1, method="bm25")) == ["fetchTideTable"]
    assert names(tool_search_rank(query="high low", k=5, method="bm25")) == []

    tide.delete()
    assert "fetchTideTable" not in names(tool_search_rank(query="moon phase", k=5))


def test_bulk_writes_are_seen_once_marked():
    [tool] = seal_tools(1)
    Tool.objects.filter(pk=tool.pk).update(description="Book a table at a restaurant")
    tool_index_mark(tool_ids=[tool.pk])
    assert names(tool_search_rank(query="restaurant table", k=1, method="bm25")) == [tool.name]


def test_a_restarted_process_loads_the_saved_index_and_embeds_only_what_changed():
    tools = seal_tools(12)
    first = CountingEmbedder()
    ToolIndexStore(settings.TOOLTRAIL_TOOL_INDEX_PATH, embed=first).sync()
    assert len(first.texts) == 12
    assert Path(settings.TOOLTRAIL_TOOL_INDEX_PATH).exists()

    tools[0].description = "Count the penguins in a colony"
    tools[0].save()
    restarted = CountingEmbedder()
    index = ToolIndexStore(settings.TOOLTRAIL_TOOL_INDEX_PATH, embed=restarted).sync()
    assert len(index) == 12
    assert len(restarted.texts) == 1 and "penguins" in restarted.texts[0]
    hits = index.search("penguin colony", k=1, method="bm25")
    assert hits[0].key == tools[0].pk


def test_a_search_limited_to_some_tools_returns_only_those():
    tools = seal_tools(20)
    allowed = tools[5:10]
    found = tool_search_rank(query=tools[0].description, allowed=[t.pk for t in allowed], k=10)
    assert sorted(names(found)) == sorted(names(allowed))


def test_the_sync_command_saves_an_index_a_restart_needs_not_rebuild():
    seal_tools(5)
    out = io.StringIO()
    call_command("tool_index_sync", stdout=out)
    assert json.loads(out.getvalue().splitlines()[-1])["tools"] == 5
    restarted = CountingEmbedder()
    index = ToolIndexStore(settings.TOOLTRAIL_TOOL_INDEX_PATH, embed=restarted).sync()
    assert len(index) == 5 and restarted.texts == []


SPEC = {
    "openapi": "3.0.3",
    "info": {"title": "Tides", "version": "1"},
    "paths": {
        "/tides": {
            "get": {
                "operationId": "listTides",
                "summary": "High and low tide times for a harbour",
                "parameters": [{"name": "harbour", "in": "query", "schema": {"type": "string"}}],
                "responses": {"200": {"description": "ok"}},
            }
        }
    },
}


def test_tools_an_openapi_import_writes_in_bulk_are_found():
    from toolsapp.services import tool_import_openapi

    seal_tools(5)
    tool_search_rank(query="tide", k=1)  # the index exists before the import
    spec = copy.deepcopy(SPEC)
    tool_import_openapi(name="tides", data=json.dumps(spec))
    assert names(tool_search_rank(query="harbour tide times", k=1)) == ["listTides"]
    spec["paths"]["/tides"]["get"]["summary"] = "Moon phases for a harbour"
    tool_import_openapi(name="tides", data=json.dumps(spec))
    assert names(tool_search_rank(query="moon phases", k=1, method="bm25")) == ["listTides"]
