"""An experiment's failures become an annotation queue."""

import pytest

from agents.evals.annotation import experiment_failures_queue_create
from agents.evals.experiments import experiment_create, experiment_run_here
from traces.annotation_services import QueueError

from .test_experiments import _agent, _dataset

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_failed_items_traces_become_a_queue_of_their_tool_calls():
    experiment = experiment_create(agent=_agent(), dataset=_dataset())
    experiment_run_here(experiment=experiment)
    lima = experiment.results.get(item__external_id="lima")

    queue = experiment_failures_queue_create(experiment=experiment, step_kinds="tool_calls")

    assert queue.source == "experiment"
    items = list(queue.items.select_related("step"))
    assert [(i.trace_id, i.step.kind, i.step.input) for i in items] == [
        (lima.trace_id, "tool_call", {"city": "Paris"})
    ]


def test_an_experiment_without_failures_makes_no_queue():
    experiment = experiment_create(agent=_agent(wrong=()), dataset=_dataset())
    experiment_run_here(experiment=experiment)
    with pytest.raises(QueueError, match="has no failed item"):
        experiment_failures_queue_create(experiment=experiment)
