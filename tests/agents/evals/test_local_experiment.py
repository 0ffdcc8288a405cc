"""A small BFCL experiment end to end on the embedded SmolLM2 model (scores are low for a
135M model; what matters is that every item runs as a trace and is scored)."""

import json

import pytest
from django.core.management import call_command

from agents.evals.models import ExperimentResult
from traces.models import Step

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_the_local_agent_runs_a_bfcl_experiment_here(bfcl_dir, demo_agents, capsys):
    call_command(
        "dataset_import",
        str(bfcl_dir / "BFCL_v4_simple_python.json"),
        "--format",
        "bfcl",
        "--answers",
        str(bfcl_dir / "possible_answer" / "BFCL_v4_simple_python.json"),
        "--name",
        "simple",
    )
    call_command(
        "run_experiment", "--agent", "local", "--dataset", "simple", "--limit", "2", "--here"
    )

    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["items"] == summary["done"] == 2
    assert summary["status"] == "succeeded"
    assert 0.0 <= summary["scores"]["accuracy"] <= 1.0
    for result in ExperimentResult.objects.all():
        assert result.status in ("scored", "error") and result.reason
        model_call = Step.objects.get(trace_id=result.trace_id, kind=Step.Kind.MODEL_CALL)
        assert model_call.input["tools"]  # the item's function was offered to the model
