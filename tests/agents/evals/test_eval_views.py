"""The dataset and experiment pages, as an admin and as a viewer."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from agents.evals.experiments import experiment_create, experiment_run_here
from agents.evals.models import Dataset, Experiment

from .test_experiments import _agent, _dataset

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def admin_client(client, make_user):
    client.force_login(make_user("ada", role="admin"))
    return client


@pytest.fixture
def viewer_client(client, make_user):
    client.force_login(make_user("vic", role="viewer"))
    return client


def _upload(name: str, text: str) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, text.encode(), content_type="application/jsonl")


def test_an_admin_imports_bfcl_files_from_the_page(admin_client, bfcl_dir):
    questions = (bfcl_dir / "BFCL_v4_parallel.json").read_text()
    answers = (bfcl_dir / "possible_answer" / "BFCL_v4_parallel.json").read_text()
    response = admin_client.post(
        "/datasets/",
        {
            "name": "par",
            "format": "bfcl",
            "questions": _upload("q.json", questions),
            "answers": _upload("a.json", answers),
        },
    )
    assert response.status_code == 302 and response["Location"] == "/datasets/par/"
    page = admin_client.get("/datasets/par/").content.decode()
    assert "200 items" in page and "parallel_0" in page


def test_a_bad_upload_names_the_line_and_imports_nothing(admin_client):
    text = json.dumps({"question": "q", "expected_answer": "a"}) + "\n{broken\n"
    response = admin_client.post(
        "/datasets/", {"name": "bad", "format": "jsonl", "questions": _upload("b.jsonl", text)}
    )
    assert response.status_code == 400
    assert "b.jsonl, line 2: not JSON" in response.content.decode()
    assert not Dataset.objects.exists()


def test_viewers_read_but_cannot_import_or_start(viewer_client):
    dataset = _dataset()
    _agent()
    assert viewer_client.get("/datasets/").status_code == 200
    assert (
        "can read datasets but not import them" in viewer_client.get("/datasets/").content.decode()
    )
    text = json.dumps({"question": "q", "expected_answer": "a"})
    assert (
        viewer_client.post(
            "/datasets/", {"name": "x", "format": "jsonl", "questions": _upload("x.jsonl", text)}
        ).status_code
        == 403
    )
    assert (
        viewer_client.post(
            "/experiments/new/", {"dataset": dataset.name, "agent": "recorded"}
        ).status_code
        == 403
    )
    assert not Experiment.objects.exists()


def test_starting_an_experiment_from_the_dataset_page(admin_client, monkeypatch):
    dataset = _dataset()
    _agent()
    sent = []
    monkeypatch.setattr(
        "agents.tasks.experiment_tick_task.delay", lambda experiment_id: sent.append(experiment_id)
    )
    response = admin_client.post(
        "/experiments/new/",
        {"dataset": dataset.name, "agent": "recorded", "limit": "3", "concurrency": "2"},
    )
    experiment = Experiment.objects.get()
    assert response["Location"] == f"/experiments/{experiment.id}/"
    assert experiment.limit == 3 and experiment.concurrency == 2 and experiment.results.count() == 3
    assert sent == [experiment.id]  # handed to the workers once committed


def test_the_experiment_page_shows_each_verdict_and_filters_failures(admin_client):
    experiment = experiment_create(agent=_agent(), dataset=_dataset())
    experiment_run_here(experiment=experiment)
    page = admin_client.get(f"/experiments/{experiment.id}/").content.decode()
    assert "0.800" in page and "lima" in page and "oslo" in page
    failed = admin_client.get(f"/experiments/{experiment.id}/?failed=1").content.decode()
    assert "lima" in failed and "oslo" not in failed
    fragment = admin_client.get(
        f"/experiments/{experiment.id}/", HTTP_HX_REQUEST="true"
    ).content.decode()
    assert fragment.lstrip().startswith('<div id="experiment-live"') and "<html" not in fragment


def test_comparing_two_experiments_shows_flipped_items_and_the_test(admin_client):
    dataset = _dataset()
    before = experiment_create(agent=_agent("before", wrong=("Lima", "Pune")), dataset=dataset)
    after = experiment_create(agent=_agent("after", wrong=("Kyiv",)), dataset=dataset)
    experiment_run_here(experiment=before)
    experiment_run_here(experiment=after)
    page = admin_client.get(f"/experiments/compare/?id={before.id}&id={after.id}").content.decode()
    assert "<strong>2</strong> fixed, <strong>1</strong> broken" in page
    assert "p = <strong>1.0000</strong>" in page  # 2 vs 1 discordant: no evidence either way
    assert "lima" in page and "kyiv" in page and "weather" in page
    assert admin_client.get(f"/experiments/compare/?id={before.id}").status_code == 302


def test_the_corrected_calls_of_a_queue_become_a_dataset(admin_client):
    from traces.annotation_models import AnnotationQueue
    from traces.demo import DEMO_QUEUE, annotation_demo_seed

    annotation_demo_seed()
    queue = AnnotationQueue.objects.get(name=DEMO_QUEUE)
    response = admin_client.post("/datasets/from-queue/", {"queue": queue.id, "name": "fixes"})
    assert response["Location"] == "/datasets/fixes/"
    dataset = Dataset.objects.get(name="fixes")
    assert dataset.format == "traces" and dataset.item_count >= 1
    item = dataset.items.first()
    names = {f["name"] for f in item.functions}
    assert {c["name"] for c in item.expected_calls} <= names
    assert (
        admin_client.post("/datasets/from-queue/", {"queue": 999999, "name": "none"}).status_code
        == 302
    )
    assert not Dataset.objects.filter(name="none").exists()
