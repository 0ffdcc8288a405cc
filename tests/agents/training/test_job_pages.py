"""The artifact and job pages, as an admin and as a viewer."""

from __future__ import annotations

import pytest
import yaml

from agents.training.artifacts import artifact_register
from agents.training.jobs import job_create, job_run
from agents.training.models import Job, ModelArtifact

from .conftest import models_make
from .test_jobs import TIES

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _artifacts_in_tmp(settings, tmp_path):
    settings.TOOLTRAIL_ARTIFACTS_DIR = str(tmp_path / "artifacts")


@pytest.fixture
def tiny(tmp_path):
    models = models_make(tmp_path / "models", n=2)
    for path in [models.base, *models.fts]:
        artifact_register(name=path.name, path=path, source=ModelArtifact.Source.PATH)
    return models


@pytest.fixture
def sent(monkeypatch):
    calls = []
    monkeypatch.setattr(
        "agents.tasks.job_run_task.apply_async", lambda args, **kw: calls.append(args[0])
    )
    return calls


def test_a_merge_from_the_page_runs_and_its_artifact_shows_lineage(client, make_user, tiny, sent):
    client.force_login(make_user("ada", role="admin"))
    response = client.post(
        "/jobs/new/merge/", {"name": "merged", "yaml": yaml.safe_dump(TIES), "seed": "0"}
    )
    job = Job.objects.get()
    assert response["Location"] == f"/jobs/{job.id}/" and sent == [job.id]
    job_run(job_id=job.id)  # what the gpu worker does with it
    page = client.get(f"/jobs/{job.id}/").content.decode()
    assert "Succeeded" in page and "merged" in page and "done" in page
    lineage = client.get("/artifacts/merged/").content.decode()
    assert f"Merge #{job.id}" in lineage
    assert all(f">{name}<" in lineage for name in ("base", "ft1", "ft2", "merged"))
    fragment = client.get(f"/jobs/{job.id}/", HTTP_HX_REQUEST="true").content.decode()
    assert fragment.lstrip().startswith('<div id="job-live"')


def test_a_bad_config_is_refused_on_the_page_and_nothing_is_queued(client, make_user, tiny, sent):
    client.force_login(make_user("ada", role="admin"))
    response = client.post(
        "/jobs/new/merge/", {"name": "x", "yaml": "merge_method: nonsense\n"}, follow=True
    )
    assert "nonsense" in response.content.decode()
    assert not Job.objects.exists() and sent == []


def test_viewers_see_jobs_but_cannot_start_or_cancel_them(client, make_user, tiny, sent):
    job = job_create(kind=Job.Kind.MERGE, name="m", config={"yaml": yaml.safe_dump(TIES)})
    client.force_login(make_user("vic", role="viewer"))
    assert client.get("/jobs/").status_code == 200
    assert client.get(f"/jobs/{job.id}/").status_code == 200
    assert (
        client.post("/jobs/new/merge/", {"name": "y", "yaml": yaml.safe_dump(TIES)}).status_code
        == 403
    )
    assert client.post(f"/jobs/{job.id}/cancel/").status_code == 403
    assert Job.objects.get(pk=job.id).status == Job.Status.QUEUED


def test_rerun_with_edits_makes_a_new_job_with_the_edited_config(client, make_user, tiny, sent):
    client.force_login(make_user("ada", role="admin"))
    job = job_create(
        kind=Job.Kind.MERGE, name="first", config={"yaml": yaml.safe_dump(TIES), "seed": 0}
    )
    job_run(job_id=job.id)
    edited = yaml.safe_dump(
        {
            **TIES,
            "merge_method": "task_arithmetic",
            "models": [{"model": "ft1", "parameters": {"weight": 1.0}}],
        }
    )
    client.post(f"/jobs/{job.id}/rerun/", {"name": "second", "config": edited})
    new = Job.objects.get(name="second")
    assert new.config["yaml"] == edited and sent == [new.id]
