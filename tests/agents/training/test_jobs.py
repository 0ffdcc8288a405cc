"""Model artifacts and GPU jobs on tiny synthetic llama models: registering artifacts,
merge jobs with lineage, cancel without half-written output, the reaper, a job on a real
worker, promotion to a runnable agent, and merge search."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from django.core.management import CommandError, call_command
from safetensors.torch import load_file

from agents.models import Agent, ModelEndpoint
from agents.training.artifacts import ArtifactError, artifact_inspect, artifact_register
from agents.training.jobs import JobContext, job_cancel, job_create, job_run, jobs_reap_stale
from agents.training.models import Job, ModelArtifact
from traces.models import Step, Trace

from .conftest import models_make

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _artifacts_in_tmp(settings, tmp_path):
    settings.TOOLTRAIL_ARTIFACTS_DIR = str(tmp_path / "artifacts")


@pytest.fixture
def registered(tmp_path):
    """base, ft1, ft2, ft3 on disk and registered as artifacts."""
    models = models_make(tmp_path / "models")
    for path in [models.base, *models.fts]:
        artifact_register(name=path.name, path=path, source=ModelArtifact.Source.PATH)
    return models


def weights(directory: Path) -> dict:
    out = {}
    for shard in sorted(directory.glob("*.safetensors")):
        out.update(load_file(shard))
    assert out, f"no weights in {directory}"
    return out


def last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


TIES = {
    "merge_method": "ties",
    "base_model": "artifact:base",
    "models": [
        {"model": "ft1", "parameters": {"weight": 0.5, "density": 0.5}},
        {"model": "artifact:ft2", "parameters": {"weight": 0.5, "density": 0.5}},
    ],
    "dtype": "float32",
}


def test_artifact_add_reads_what_a_model_is_without_loading_it(tmp_path, capsys):
    models = models_make(tmp_path / "m", n=1)
    call_command("artifact_add", str(models.base), "--name", "tiny")
    out = last_json(capsys)
    expected = sum(t.numel() for t in models.tensors[models.base].values())
    assert out["artifact"] == "tiny" and out["parameters"] == expected and out["dtype"] == "float32"
    assert (
        len(out["sha256"]) == 64 and out["sha256"] == artifact_inspect(path=models.base)["sha256"]
    )
    artifact = ModelArtifact.objects.get(name="tiny")
    assert artifact.architecture == "LlamaForCausalLM" and artifact.source == "path"
    with pytest.raises(CommandError, match="exists already"):
        call_command("artifact_add", str(models.base), "--name", "tiny")


def test_directories_that_are_not_models_are_refused_clearly(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArtifactError, match="has no config.json"):
        artifact_inspect(path=tmp_path / "empty")
    (tmp_path / "empty" / "config.json").write_text("{}")
    with pytest.raises(ArtifactError, match=r"has no \*.safetensors"):
        artifact_inspect(path=tmp_path / "empty")
    with pytest.raises(CommandError, match="one of them"):
        call_command("artifact_add", "--name", "x")


def test_a_merge_job_makes_an_artifact_with_its_lineage(registered, tmp_path, capsys):
    config = tmp_path / "ties.yml"
    config.write_text(yaml.safe_dump(TIES))
    call_command("job_run", "merge", str(config), "--name", "merged", "--here")
    out = last_json(capsys)
    assert out["status"] == "succeeded" and out["artifact"] == "merged"
    assert out["metrics"]["tensors"] == len(registered.tensors[registered.base])
    merged = ModelArtifact.objects.get(name="merged")
    job = Job.objects.get(pk=out["job"])
    assert merged.made_by == job and job.output == merged and merged.source == "job"
    assert sorted(merged.parents.values_list("name", flat=True)) == ["base", "ft1", "ft2"]
    assert job.progress == 1.0 and "done" in job.log and job.resources["wall_s"] >= 0
    # Same engine, same bits as the command-line merge of the same YAML with paths.
    plain = dict(TIES, base_model=str(registered.base))
    plain["models"] = [
        dict(m, model=str(p)) for m, p in zip(TIES["models"], registered.fts, strict=False)
    ]
    (tmp_path / "plain.yml").write_text(yaml.safe_dump(plain))
    call_command("merge_models", str(tmp_path / "plain.yml"), str(tmp_path / "plain-out"))
    ours, theirs = weights(Path(merged.path)), weights(tmp_path / "plain-out")
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert artifact_inspect(path=tmp_path / "plain-out")["parameters"] == merged.parameters


def test_a_bad_merge_config_is_refused_before_any_job(registered, tmp_path):
    config = tmp_path / "bad.yml"
    config.write_text(yaml.safe_dump({**TIES, "base_model": "artifact:nope"}))
    with pytest.raises(CommandError, match="names artifact 'nope', which does not exist"):
        call_command("job_run", "merge", str(config), "--name", "x", "--here")
    config.write_text("merge_method: [unclosed")
    with pytest.raises(CommandError, match="not valid YAML"):
        call_command("job_run", "merge", str(config), "--name", "x", "--here")
    assert not Job.objects.exists()


def test_cancel_stops_a_merge_and_leaves_no_half_written_artifact(
    registered, settings, monkeypatch
):
    job = job_create(kind=Job.Kind.MERGE, name="halfway", config={"yaml": yaml.safe_dump(TIES)})
    real_progress = JobContext.progress

    def progress_then_cancel(self, fraction, message=""):
        real_progress(self, fraction, message)
        Job.objects.filter(pk=self.job.pk).update(cancel_requested=True)  # someone presses Cancel

    monkeypatch.setattr(JobContext, "progress", progress_then_cancel)
    job = job_run(job_id=job.id)
    assert job.status == Job.Status.CANCELLED and "partial output removed" in job.error
    artifacts = Path(settings.TOOLTRAIL_ARTIFACTS_DIR)
    assert not (artifacts / "halfway").exists()
    assert not [p for p in artifacts.iterdir() if "partial" in p.name]
    assert not ModelArtifact.objects.filter(name="halfway").exists()


def test_a_queued_job_cancels_at_once_and_a_lost_worker_is_reaped():
    queued = job_create(kind=Job.Kind.MERGE, name="q", config={})
    assert job_cancel(job_id=queued.id).status == Job.Status.CANCELLED
    lost = job_create(kind=Job.Kind.SFT, name="lost", config={})
    Job.objects.filter(pk=lost.pk).update(
        status="running", worker="gone:1", heartbeat_at="2000-01-01T00:00:00Z"
    )
    (reaped,) = jobs_reap_stale(stale_after=4)
    assert reaped.id == lost.id and reaped.status == Job.Status.FAILED
    assert "worker lost: gone:1" in reaped.error


@pytest.mark.integration
def test_wait_runs_the_job_on_a_gpu_queue_worker(stack, registered, tmp_path, capsys):
    config = tmp_path / "ties.yml"
    config.write_text(yaml.safe_dump(TIES))
    call_command(
        "job_run", "merge", str(config), "--name", "by-worker", "--wait", "--timeout", "120"
    )
    out = last_json(capsys)
    assert out["status"] == "succeeded" and out["artifact"] == "by-worker"
    job = Job.objects.get(pk=out["job"])
    assert job.worker and job.device == "cpu"


def test_a_promoted_artifact_is_an_agent_that_runs(registered, capsys, scripted_agent):
    source = scripted_agent([{"content": "unused"}], slug="helper")
    call_command("promote_artifact", "ft1", "--agent", "helper")
    out = last_json(capsys)
    endpoint = ModelEndpoint.objects.get(name=out["endpoint"])
    agent = Agent.objects.get(slug=out["agent"])
    assert endpoint.kind == "hf" and endpoint.artifact.name == "ft1"
    assert (
        agent.endpoint == endpoint and agent.toolset == source.toolset and agent.slug != source.slug
    )

    from agents.runner import trace_run
    from traces.services import trace_create

    endpoint.config = {"max_new_tokens": 4}
    endpoint.save()
    trace = trace_create(
        name=agent.name, input="hello world", agent_slug=agent.slug, metadata={"agent_id": agent.id}
    )
    finished = trace_run(trace_id=trace.id)
    assert finished.status == Trace.Status.SUCCEEDED
    model_call = Step.objects.get(trace=trace, kind=Step.Kind.MODEL_CALL)
    assert model_call.name == "ft1" and model_call.completion_tokens > 0


def test_merge_search_scores_candidates_keeps_the_pareto_front_and_cleans_up(
    registered, settings, scripted_agent
):
    from agents.evals.datasets import jsonl_items_parse
    from agents.evals.services import dataset_create

    for name in ("task-a", "task-b"):
        dataset_create(
            name=name,
            format="jsonl",
            items=jsonl_items_parse(
                [json.dumps({"question": "hello", "expected_answer": "world"})]
            ),
        )
    scripted_agent([{"content": "x"}], slug="evaluator")
    search = {
        "base": {
            **TIES,
            "base_model": "base",
            "models": [
                {"model": "ft1", "parameters": {"weight": 0.5, "density": 0.5}},
                {"model": "ft2", "parameters": {"weight": 0.5, "density": 0.5}},
            ],
        },
        "space": {"models.0.parameters.weight": [0.2, 0.8]},
        "strategy": "grid",
        "agent": "evaluator",
        "datasets": ["task-a", "task-b"],
        "limit": 1,
        "max_new_tokens": 2,
    }
    job = job_create(kind=Job.Kind.MERGE_SEARCH, name="search", config=search)
    job = job_run(job_id=job.id)
    assert job.status == Job.Status.SUCCEEDED, job.error
    rows = job.metrics["candidates"]
    assert [r["settings"] for r in rows] == [
        {"models.0.parameters.weight": 0.2},
        {"models.0.parameters.weight": 0.8},
    ]
    assert all(len(r["scores"]) == 2 and len(r["experiments"]) == 2 for r in rows)
    assert any(r["pareto"] for r in rows)
    leftovers = list(Path(settings.TOOLTRAIL_ARTIFACTS_DIR).rglob("candidate-*"))
    assert leftovers == []  # temporary candidates are gone


def test_pareto_front():
    from agents.training.merge_search import pareto_front

    assert pareto_front([[0.5, 0.5], [0.6, 0.4], [0.4, 0.4], [0.6, 0.5]]) == [
        False,
        False,
        False,
        True,
    ]
    assert pareto_front([[1, 0], [0, 1]]) == [True, True]


def test_a_cancel_stops_an_hf_model_between_tokens(registered):
    from agents.llm import ModelCancelled
    from agents.llm.hf import HfBackend

    from ..interrupt import CancelAfter

    artifact = ModelArtifact.objects.get(name="ft1")
    endpoint = ModelEndpoint(name="ft1", kind="hf", artifact=artifact, config={})
    endpoint.config = {"max_new_tokens": 40}
    backend = HfBackend(endpoint)
    hello = [{"role": "user", "content": "hello world"}]
    assert backend.complete(hello, []).completion_tokens == 40  # never stops by itself

    cancel = CancelAfter(checks=3)
    with pytest.raises(ModelCancelled, match="cancelled"):
        backend.complete(hello, [], cancel=cancel)
    # one check before the call, one after each token until the third, one after
    assert cancel.checks == 5
