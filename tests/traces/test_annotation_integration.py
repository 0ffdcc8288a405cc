"""Annotation with the real parts: labels reach trace websockets through Redis and
Daphne; exports and judge suggestions run on a real Celery worker."""

from __future__ import annotations

import asyncio
import json
import zipfile

import httpx
import pytest
from websockets.asyncio.client import connect

from tooltrail.services import api_token_create

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


async def _label_messages(stack, token, trace_id, *, as_json, post) -> str:
    url = f"{stack.ws_url}/ws/traces/{trace_id}/?after=1000" + ("&format=json" if as_json else "")
    async with connect(
        url, origin=stack.base_url, additional_headers={"Authorization": f"Bearer {token}"}
    ) as ws:
        await ws.recv()  # the trace's state, sent on connect
        await asyncio.to_thread(post)
        async with asyncio.timeout(15):
            while True:
                message = await ws.recv()
                if ("labels" in message) if as_json else ("step-labels-2" in message):
                    return message


def test_a_label_shows_live_on_every_open_trace_page(stack, make_user, schema_trace):
    _, token = api_token_create(user=make_user("ana"))
    _, watcher = api_token_create(user=make_user("vic", "viewer"))
    body = {
        "trace_id": str(schema_trace.id),
        "step_seq": 2,
        "verdict": "bad",
        "category": "wrong-arguments",
    }

    def post(verdict: str):
        def send():
            with httpx.Client(
                base_url=stack.base_url, headers={"Authorization": f"Bearer {token}"}
            ) as api:
                version = {"version": 1} if verdict != "bad" else {}
                response = api.post(
                    "/api/annotations", json={**body, "verdict": verdict, **version}
                )
                assert response.status_code == 201, response.text

        return send

    as_json = asyncio.run(
        _label_messages(stack, watcher, schema_trace.id, as_json=True, post=post("bad"))
    )
    data = json.loads(as_json)
    assert data["type"] == "labels" and data["step_seq"] == 2
    assert [(lab["author"], lab["verdict"], lab["category"]) for lab in data["labels"]] == [
        ("ana", "bad", "wrong-arguments")
    ]
    html = asyncio.run(
        _label_messages(stack, watcher, schema_trace.id, as_json=False, post=post("neutral"))
    )
    assert 'id="step-labels-2" hx-swap-oob="true"' in html and "Neutral" in html


def test_an_export_runs_on_the_worker_and_is_downloadable(stack, make_user, demo_queue, client):
    from traces.annotation_models import Export
    from traces.export_services import export_archive, export_start

    admin = make_user("root", "admin")
    export = export_start(user=admin, format="prm", queue_id=demo_queue.id, split=0.6, seed=1)
    done = stack.wait_until(
        lambda: (e := Export.objects.get(pk=export.pk)).status in ("done", "failed") and e,
        what="the export to finish",
    )
    assert done.status == "done", done.error
    assert done.progress == 1.0 and sum(done.rows.values()) == 5
    client.force_login(admin)
    response = client.get(f"/exports/{export.id}/download/")
    assert response.status_code == 200
    with zipfile.ZipFile(export_archive(done)) as archive:
        assert sorted(archive.namelist()) == [
            "README.md",
            "test.jsonl",
            "test.parquet",
            "train.jsonl",
            "train.parquet",
        ]
    page = client.get(f"/exports/{export.id}/").content.decode()
    assert 'data-testid="download"' in page and "every 1s" not in page


def test_judge_suggestions_are_made_by_a_celery_task(stack, schema_trace):
    from agents.models import ModelEndpoint
    from traces.annotation_models import Suggestion
    from traces.annotation_services import queue_create

    answer = {"verdict": "bad", "category": "wrong-arguments", "corrected_call": None}
    ModelEndpoint.objects.create(
        name="judge-live",
        kind=ModelEndpoint.Kind.SCRIPTED,
        config={
            "script": [
                {"content": json.dumps(answer)},
                {"content": json.dumps({**answer, "verdict": "good"})},
            ]
        },
    )
    queue = queue_create(
        name="judged live",
        filter={"tool": "clock"},
        step_kinds="tool_calls",
        judge_endpoint="judge-live",
    )
    stack.wait_until(
        lambda: Suggestion.objects.filter(queue=queue).count() == 2, what="two suggestions"
    )
    assert list(
        Suggestion.objects.order_by("item__position").values_list("verdict", flat=True)
    ) == ["bad", "good"]
