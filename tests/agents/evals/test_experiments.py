"""Experiments: every item runs as a normal trace and is scored with its reason; nothing
finished is redone; cancel, resume and retry behave."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command

from agents.evals.datasets import jsonl_items_parse
from agents.evals.experiments import (
    experiment_cancel,
    experiment_create,
    experiment_resume,
    experiment_retry_failed,
    experiment_run_here,
)
from agents.evals.models import ExperimentResult
from agents.evals.services import dataset_create
from agents.models import Agent, ModelEndpoint
from traces.models import Step, Trace

WEATHER = {
    "name": "weather",
    "description": "Current weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
CITIES = ["Oslo", "Lima", "Pune", "Kyiv"]


def _dataset(name="cities"):
    lines = [
        json.dumps(
            {
                "id": city.lower(),
                "question": f"Weather in {city}?",
                "functions": [WEATHER],
                "expected_calls": [{"name": "weather", "arguments": {"city": city}}],
                "category": "weather",
            }
        )
        for city in CITIES
    ]
    lines.append(
        json.dumps(
            {"id": "chat", "question": "Say hi", "expected_answer": "hi", "category": "chat"}
        )
    )
    return dataset_create(name=name, format="jsonl", items=jsonl_items_parse(lines))


def _agent(slug="recorded", *, wrong=("Lima",), missing=()):
    """An agent on a recording: right calls, except a wrong city for ``wrong`` and no reply
    at all (a model error) for ``missing``."""
    by_input = {}
    for city in CITIES:
        if city in missing:
            continue
        said = "Paris" if city in wrong else city
        by_input[f"Weather in {city}?"] = [
            {"tool_calls": [{"name": "weather", "arguments": {"city": said}}], "prompt_tokens": 10}
        ]
    by_input["Say hi"] = [{"content": "hi there!"}]
    endpoint = ModelEndpoint.objects.create(
        name=f"rec-{slug}", kind=ModelEndpoint.Kind.SCRIPTED, config={"script_by_input": by_input}
    )
    return Agent.objects.create(name=slug, slug=slug, endpoint=endpoint)


# The runner closes stale connections as a worker does, so these tests commit for real.
pytestmark = pytest.mark.django_db(transaction=True)


def test_run_here_scores_every_item_with_its_reason_and_each_run_is_a_trace(capsys):
    _dataset()
    _agent()

    call_command("run_experiment", "--agent", "recorded", "--dataset", "cities", "--here")

    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["items"] == summary["done"] == 5
    assert summary["scores"]["accuracy"] == pytest.approx(4 / 5)
    assert summary["scores"]["by_category"] == {"chat": 1.0, "weather": 0.75}
    results = {r.item.external_id: r for r in ExperimentResult.objects.select_related("item")}
    assert not results["lima"].valid
    assert "Paris" in results["lima"].reason and "Lima" in results["lima"].reason
    assert results["oslo"].valid and results["oslo"].output_calls == [
        {"name": "weather", "arguments": {"city": "Oslo"}}
    ]
    trace = Trace.objects.get(pk=results["oslo"].trace_id)
    assert trace.status == Trace.Status.SUCCEEDED and trace.agent_slug == "recorded"
    # The item's function was offered and its call recorded, not run.
    kinds = list(Step.objects.filter(trace=trace).order_by("seq").values_list("kind", flat=True))
    assert kinds == [Step.Kind.MODEL_CALL, Step.Kind.TOOL_CALL]
    assert Step.objects.get(trace=trace, kind=Step.Kind.MODEL_CALL).input["tools"] == ["weather"]


def test_a_model_error_is_an_errored_item_that_retry_runs_again():
    dataset = _dataset()
    agent = _agent(missing=("Pune",))
    experiment = experiment_create(agent=agent, dataset=dataset)
    experiment_run_here(experiment=experiment)
    pune = ExperimentResult.objects.get(experiment=experiment, item__external_id="pune")
    assert pune.status == ExperimentResult.Status.ERROR
    assert "the run ended failed" in pune.reason and "no replies for the question" in pune.reason
    first_trace = pune.trace_id
    experiment.refresh_from_db()
    assert experiment.scores["errors"] == 1

    # The recording is fixed; retrying runs only the errored item again.
    agent.endpoint.config["script_by_input"]["Weather in Pune?"] = [
        {"tool_calls": [{"name": "weather", "arguments": {"city": "Pune"}}]}
    ]
    agent.endpoint.save()
    others = dict(ExperimentResult.objects.exclude(pk=pune.pk).values_list("pk", "trace_id"))
    assert experiment_retry_failed(experiment_id=experiment.id) == 1
    experiment_run_here(experiment=experiment)
    pune.refresh_from_db()
    assert pune.valid and pune.trace_id != first_trace and pune.attempts == 2
    assert (
        dict(ExperimentResult.objects.exclude(pk=pune.pk).values_list("pk", "trace_id")) == others
    )
    experiment.refresh_from_db()
    assert experiment.status == "succeeded" and experiment.scores["errors"] == 0


def test_resume_after_a_crash_requeues_unstarted_items_and_scores_finished_ones():
    dataset = _dataset()
    experiment = experiment_create(agent=_agent(), dataset=dataset, limit=3)
    experiment_run_here(experiment=experiment)
    oslo, lima, pune = ExperimentResult.objects.filter(experiment=experiment).order_by(
        "item__index"
    )
    # As a crash would leave them: one claimed but never started, one whose trace
    # finished before the worker could score it.
    ExperimentResult.objects.filter(pk=lima.pk).update(status="running", trace_id=None)
    ExperimentResult.objects.filter(pk=pune.pk).update(status="running", valid=None, reason="")

    assert experiment_resume(experiment_id=experiment.id) == {"requeued": 1, "scored": 1}
    pune.refresh_from_db()
    assert pune.status == "scored" and pune.valid
    experiment_run_here(experiment=experiment)
    oslo_after = ExperimentResult.objects.get(pk=oslo.pk)
    assert oslo_after.trace_id == oslo.trace_id  # finished items are not redone
    assert ExperimentResult.objects.get(pk=lima.pk).status == "scored"


def test_cancel_keeps_scored_items_and_starts_no_more():
    dataset = _dataset()
    experiment = experiment_create(agent=_agent(), dataset=dataset)
    experiment_cancel(experiment_id=experiment.id)
    experiment_run_here(experiment=experiment)
    experiment.refresh_from_db()
    assert experiment.status == "cancelled"
    assert not ExperimentResult.objects.exclude(status="pending").exists()


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_wait_fans_items_out_over_the_workers(stack, capsys):
    _dataset()
    _agent()

    call_command(
        "run_experiment",
        "--agent",
        "recorded",
        "--dataset",
        "cities",
        "--wait",
        "--concurrency",
        "2",
        "--timeout",
        "120",
    )

    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["status"] == "succeeded"
    assert summary["done"] == 5 and summary["scores"]["accuracy"] == pytest.approx(0.8)
    traces = Trace.objects.filter(pk__in=ExperimentResult.objects.values("trace_id"))
    assert traces.count() == 5
    assert set(traces.values_list("worker", flat=True)) != {""}  # run by the worker, not here


def test_an_llm_judge_grades_every_answer_against_the_rubric():
    dataset = _dataset()
    judge = ModelEndpoint.objects.create(
        name="judge",
        kind=ModelEndpoint.Kind.SCRIPTED,
        config={"script": [{"content": 'Graded. {"score": 0.75, "reason": "mostly right"}'}]},
    )
    experiment = experiment_create(
        agent=_agent(), dataset=dataset, judge=judge, rubric="Reward the right city."
    )
    experiment_run_here(experiment=experiment)
    experiment.refresh_from_db()
    assert experiment.scores["llm_judge"] == pytest.approx(0.75)
    judged = ExperimentResult.objects.filter(experiment=experiment).first()
    assert judged.metrics["scores"]["llm_judge"] == 0.75

    mute = ModelEndpoint.objects.create(
        name="mute-judge",
        kind=ModelEndpoint.Kind.SCRIPTED,
        config={"script": [{"content": "fine"}]},
    )
    second = experiment_create(
        agent=Agent.objects.get(slug="recorded"), dataset=dataset, judge=mute
    )
    experiment_run_here(experiment=second)
    second.refresh_from_db()
    assert second.scores["llm_judge"] == 0.0  # an unusable grade is a zero, never a pass
