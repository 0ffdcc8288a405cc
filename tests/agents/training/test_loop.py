"""The whole loop on CPU with tiny data: demo traces → an annotated queue → an SFT export
→ a LoRA job → an artifact → an endpoint → an experiment against the model it came from
→ the comparison page."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command

from agents.evals.experiments import experiment_create, experiment_run_here
from agents.evals.selectors import experiments_compare
from agents.evals.services import dataset_from_queue
from agents.models import Agent
from agents.training.models import ModelArtifact
from agents.training.promote import artifact_promote
from traces.annotation_models import AnnotationQueue
from traces.demo import DEMO_QUEUE, annotation_demo_seed
from traces.export_services import dataset_export

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.mark.timeout(1200)  # de-quantising, training and generating on CPU
def test_labelled_traces_become_a_model_that_an_experiment_compares(
    smollm2, demo_agents, tmp_path, capsys, client, make_user
):
    annotation_demo_seed()
    queue = AnnotationQueue.objects.get(name=DEMO_QUEUE)
    export = tmp_path / "sft"
    written = dataset_export(format="sft", out_dir=export, queue_id=queue.id)
    rows = [json.loads(line) for line in (export / "sft.jsonl").read_text().splitlines()]
    assert rows and written["traces"] >= 1

    call_command(
        "job_run",
        "sft",
        "--base",
        "smol",
        "--dataset",
        str(export),
        "--name",
        "smol-loop",
        "--steps",
        "3",
        "--lora-r",
        "4",
        "--max-length",
        "256",
        "--batch-size",
        "2",
        "--here",
    )
    job = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert job["status"] == "succeeded" and job["artifact"] == "smol-loop"
    tuned = ModelArtifact.objects.get(name="smol-loop")
    assert list(tuned.parents.values_list("name", flat=True)) == ["smol"]

    local = Agent.objects.get(slug="local")
    _, before = artifact_promote(artifact=smollm2, agent=local)
    endpoint, after = artifact_promote(artifact=tuned, agent=local)
    for agent in (before, after):
        agent.endpoint.config = {"max_new_tokens": 24}
        agent.endpoint.save()
    assert endpoint.kind == "hf" and after.endpoint.artifact == tuned

    dataset = dataset_from_queue(queue_id=queue.id, name="demo-corrections")
    assert dataset.item_count >= 1
    item = dataset.items.first()
    assert item.expected_calls and item.functions and item.messages[-1]["role"] == "user"

    experiments = []
    for agent in (before, after):
        experiment = experiment_create(agent=agent, dataset=dataset)
        experiments.append(experiment_run_here(experiment=experiment))
    assert all(
        e.status == "succeeded" and e.scores["items_scored"] == dataset.item_count
        for e in experiments
    )

    comparison = experiments_compare(experiments=experiments)
    assert comparison["pairs"][0]["shared"] == dataset.item_count
    client.force_login(make_user("ada", role="admin"))
    page = client.get(f"/experiments/compare/?id={experiments[0].id}&id={experiments[1].id}")
    assert page.status_code == 200 and "McNemar" in page.content.decode()
