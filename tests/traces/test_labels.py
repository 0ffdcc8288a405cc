"""Labels: validation, optimistic locking, history, and the live label event."""

from __future__ import annotations

import pytest

from traces.annotation_models import Annotation, AnnotationRevision
from traces.annotation_services import LabelConflict, LabelError, annotation_save

pytestmark = pytest.mark.django_db


def test_a_label_records_who_and_keeps_every_edit_in_its_history(make_user, schema_trace):
    ana = make_user("ana")
    first = annotation_save(
        user=ana,
        trace_id=schema_trace.id,
        step_seq=2,
        verdict="bad",
        category="wrong-arguments",
        note="tz is not a parameter",
    )
    second = annotation_save(
        user=ana,
        trace_id=schema_trace.id,
        step_seq=2,
        verdict="bad",
        category="hallucinated",
        version=first.version,
    )

    assert second.pk == first.pk and second.version == 2
    assert second.author == ana and second.category.slug == "hallucinated"
    history = list(AnnotationRevision.objects.filter(annotation=second).order_by("version"))
    assert [(r.version, r.author.username, r.data["category"]) for r in history] == [
        (1, "ana", "wrong-arguments"),
        (2, "ana", "hallucinated"),
    ]


def test_two_people_editing_one_gold_label_the_second_is_refused_not_overwritten(
    make_user, schema_trace
):
    ana, ben = make_user("ana", "admin"), make_user("ben", "admin")
    gold = annotation_save(
        user=ana, trace_id=schema_trace.id, step_seq=2, verdict="bad", role=Annotation.Role.GOLD
    )
    # Both read version 1; ana saves first.
    annotation_save(
        user=ana,
        trace_id=schema_trace.id,
        step_seq=2,
        verdict="neutral",
        role=Annotation.Role.GOLD,
        version=gold.version,
    )
    with pytest.raises(LabelConflict, match=r"changed by ana .*now version 2, you sent 1"):
        annotation_save(
            user=ben,
            trace_id=schema_trace.id,
            step_seq=2,
            verdict="good",
            role=Annotation.Role.GOLD,
            version=gold.version,
        )
    gold.refresh_from_db()
    assert (gold.verdict, gold.version, gold.author.username) == ("neutral", 2, "ana")


def test_saving_over_an_existing_label_without_its_version_is_refused(make_user, schema_trace):
    ana = make_user("ana")
    annotation_save(user=ana, trace_id=schema_trace.id, step_seq=2, verdict="bad")
    with pytest.raises(LabelConflict, match="send|you sent none"):
        annotation_save(user=ana, trace_id=schema_trace.id, step_seq=2, verdict="good")
    assert Annotation.objects.get().verdict == "bad"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"verdict": "great"}, "unknown verdict 'great'"),
        (
            {"verdict": "bad", "category": "typo"},
            "unknown category 'typo'; known categories: wrong-tool",
        ),
        ({"verdict": "bad", "step_seq": 99}, "has no step #99"),
        (
            {"verdict": "bad", "corrected_call": {"name": "clock", "arguments": {"tz": "Paris"}}},
            "breaks the schema of 'clock': (the arguments object): Additional properties are not allowed",
        ),
        (
            {"verdict": "bad", "corrected_call": {"name": "teleport", "arguments": {}}},
            "no JSON Schema is recorded for tool 'teleport'",
        ),
        (
            {"verdict": "bad", "step_seq": 1, "corrected_call": {"name": "clock", "arguments": {}}},
            "step #1 is a model_call; a corrected call belongs on a tool_call step",
        ),
    ],
)
def test_bad_labels_are_refused_with_the_reason_and_nothing_is_saved(
    make_user, schema_trace, kwargs, message
):
    args = {"user": make_user("ana"), "trace_id": schema_trace.id, "step_seq": 2, **kwargs}
    with pytest.raises(LabelError) as caught:
        annotation_save(**args)
    assert message in str(caught.value)
    assert not Annotation.objects.exists()


def test_a_corrected_call_that_fits_the_schema_is_kept(make_user, schema_trace):
    label = annotation_save(
        user=make_user("ana"),
        trace_id=schema_trace.id,
        step_seq=2,
        verdict="bad",
        corrected_call={"name": "clock", "arguments": '{"timezone": "Europe/Paris"}'},
    )
    assert label.corrected_call == {"name": "clock", "arguments": {"timezone": "Europe/Paris"}}


def test_the_trace_page_shows_a_steps_labels(client, make_user, schema_trace):
    ana = make_user("ana")
    annotation_save(
        user=ana,
        trace_id=schema_trace.id,
        step_seq=2,
        verdict="bad",
        category="wrong-arguments",
        note="use timezone",
    )
    client.force_login(make_user("vic", "viewer"))
    page = client.get(f"/traces/{schema_trace.id}/?step=2").content.decode()
    assert 'id="step-labels-2"' in page and "Wrong arguments" in page and "use timezone" in page
    annotation_save(user=ana, trace_id=schema_trace.id, step_seq=None, verdict="good", score=0.9)
    page = client.get(f"/traces/{schema_trace.id}/").content.decode()
    assert 'id="trace-labels"' in page and "Trace labels (1)" in page and "score 0.9" in page


def test_the_taxonomy_is_seeded_and_editable(make_user, schema_trace):
    from traces.annotation_models import ErrorCategory

    names = list(ErrorCategory.objects.values_list("name", flat=True))
    assert names == [
        "Wrong tool",
        "Wrong arguments",
        "Missing call",
        "Unnecessary call / tool overuse",
        "Hallucinated tool or argument",
        "Bad final answer",
        "Tool failure",
        "Other",
    ]
    ErrorCategory.objects.create(slug="stale-data", name="Stale data", position=9)
    ErrorCategory.objects.filter(slug="other").update(active=False)
    ana = make_user("ana")
    label = annotation_save(
        user=ana, trace_id=schema_trace.id, step_seq=2, verdict="bad", category="stale-data"
    )
    assert label.category.name == "Stale data"
    with pytest.raises(LabelError, match="unknown category 'other'"):
        annotation_save(
            user=ana, trace_id=schema_trace.id, step_seq=3, verdict="bad", category="other"
        )
