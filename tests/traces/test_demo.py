"""seed_demo also makes finished demo traces and a labelled demo queue, once."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from traces.annotation_models import Annotation, AnnotationQueue
from traces.annotation_selectors import queue_agreement, queue_progress
from traces.demo import DEMO_QUEUE
from traces.export_services import dataset_export
from traces.models import Trace

pytestmark = pytest.mark.django_db


def test_seed_demo_gives_a_new_user_a_labelled_queue_to_open_and_export(tmp_path):
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    call_command("seed_demo", stdout=out)  # again: nothing doubles

    queue = AnnotationQueue.objects.get(name=DEMO_QUEUE)
    # The annotation demo's five runs (the agents' own demo runs are marked metadata.demo_runs).
    assert (
        Trace.objects.filter(status="succeeded", agent_slug="demo")
        .exclude(metadata__has_key="demo_runs")
        .count()
        == 5
    )
    progress = queue_progress(queue=queue)
    assert progress["items_done"] == progress["items_total"] == 28
    assert [a["username"] for a in progress["annotators"]] == ["demo-ana", "demo-ben"]
    agreement = queue_agreement(queue=queue)
    assert agreement["kappa"] is not None and agreement["alpha"] is not None
    assert Annotation.objects.exclude(corrected_call=None).count() >= 2
    assert (
        Annotation.objects.filter(verdict="bad").exists()
        and Annotation.objects.filter(verdict="good").exists()
    )
    for fmt in ("sft", "dpo", "prm"):
        assert sum(dataset_export(format=fmt, out_dir=tmp_path / fmt)["rows"].values()) > 0
