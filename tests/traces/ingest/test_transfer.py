"""Keeping and moving traces: export (our JSON, OTLP/JSON), import back, retention."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from google.protobuf import json_format

from traces.ingest.decode import parse
from traces.ingest.mapping import request_to_records
from traces.models import Step, Trace
from traces.services import (
    TraceError,
    spans_ingest,
    trace_finish,
    trace_import,
    traces_apply_retention,
    traces_close_idle_ingested,
)
from traces.transfer import trace_export_json, trace_export_otlp

from .otlp_builders import (
    genai_agent_spans,
    new_span_id,
    new_trace_id,
    request,
    span,
    to_otlp_json,
)

pytestmark = pytest.mark.django_db


def ingest(req) -> Trace:
    records = request_to_records(req).records
    spans_ingest(records=records)
    return Trace.objects.get(otel_trace_id=records[0].otel_trace_id)


def otlp_spans(data: dict) -> dict[str, dict]:
    """Spans of an OTLP request, by span id, each with its resource and scope
    (attributes in key order, which OTLP leaves free)."""
    req = parse(json.dumps(data).encode(), kind="application/json")
    out = {}
    for rs in req.resource_spans:
        for ss in rs.scope_spans:
            for s in ss.spans:
                span = json_format.MessageToDict(s)
                span["attributes"] = sorted(span.get("attributes", []), key=lambda a: a["key"])
                out[s.span_id.hex()] = {
                    "span": span,
                    "resource": json_format.MessageToDict(rs.resource),
                    "scope": json_format.MessageToDict(ss.scope),
                }
    return out


def test_our_json_export_imports_back_exactly(recorded_trace):
    trace, _ = recorded_trace
    trace_finish(trace_id=trace.id, status=Trace.Status.SUCCEEDED, output="hi")
    exported = trace_export_json(trace=Trace.objects.get(pk=trace.id))
    Trace.objects.filter(pk=trace.id).delete()

    imported = trace_import(data=json.loads(json.dumps(exported)))

    assert trace_export_json(trace=imported) == exported
    assert [s.parent.seq if s.parent else None for s in imported.steps.order_by("seq")] == [
        None,
        1,
        2,
        1,
    ]


def test_an_out_of_order_ingested_trace_survives_the_json_round_trip():
    tid, root = new_trace_id(), new_span_id()
    spans_ingest(
        records=request_to_records(request(span("child", trace_id=tid, parent=root))).records
    )
    trace = ingest(request(span("root", trace_id=tid, span_id=root)))
    exported = trace_export_json(trace=trace)
    trace.delete()
    assert trace_export_json(trace=trace_import(data=exported)) == exported


def test_importing_what_is_not_an_export_or_already_here_is_refused(recorded_trace):
    trace, _ = recorded_trace
    with pytest.raises(TraceError, match="format"):
        trace_import(data={"steps": []})
    with pytest.raises(TraceError, match="already exists"):
        trace_import(data=trace_export_json(trace=trace))
    ingested = ingest(request(span("root", trace_id=new_trace_id())))
    same_otel_id = trace_export_json(trace=ingested)
    same_otel_id["trace"]["id"] = "6b0c3e2c-0000-4000-8000-00000000000a"
    with pytest.raises(TraceError, match="OTLP trace id"):
        trace_import(data=same_otel_id)
    broken = trace_export_json(trace=trace)
    broken["trace"]["id"] = "6b0c3e2c-0000-4000-8000-000000000000"
    broken["steps"][1]["parent_seq"] = 99
    with pytest.raises(TraceError, match="parent step 99"):
        trace_import(data=broken)
    assert not Trace.objects.filter(pk=broken["trace"]["id"]).exists()


def test_ingested_spans_export_as_otlp_json_as_they_came():
    tid = new_trace_id()
    original = request(*genai_agent_spans(tid))
    trace = ingest(original)

    exported = trace_export_otlp(trace=trace)

    sent = otlp_spans(to_otlp_json(original))
    assert otlp_spans(exported) == sent
    # And back in: the same steps again.
    before = [(s.kind, s.name, s.input, s.output, s.span_id) for s in trace.steps.order_by("seq")]
    trace.delete()
    again = ingest(parse(json.dumps(exported).encode(), kind="application/json"))
    assert [
        (s.kind, s.name, s.input, s.output, s.span_id) for s in again.steps.order_by("seq")
    ] == before
    assert otlp_spans(trace_export_otlp(trace=again)) == sent


def test_a_runner_trace_exports_as_otlp_that_ingests_into_the_same_steps(recorded_trace):
    trace, steps = recorded_trace
    exported = trace_export_otlp(trace=trace)
    again = ingest(parse(json.dumps(exported).encode(), kind="application/json"))
    fields = ("seq", "kind", "name", "input", "output", "tool_call_id", "prompt_tokens")
    assert [tuple(getattr(s, f) for f in fields) for s in again.steps.order_by("seq")] == [
        tuple(getattr(s, f) for f in fields) for s in steps
    ]
    assert [s.parent.seq if s.parent else None for s in again.steps.order_by("seq")] == [
        None,
        1,
        2,
        1,
    ]


def test_export_and_import_commands_round_trip(recorded_trace, tmp_path, capsys):
    trace, _ = recorded_trace
    path = tmp_path / "trace.json"
    call_command("export_trace", str(trace.id), "--output", str(path))
    original = json.loads(path.read_text())
    trace.delete()
    call_command("import_trace", str(path))
    assert trace_export_json(trace=Trace.objects.get(pk=original["trace"]["id"])) == original
    otlp_path = tmp_path / "trace.otlp.json"
    call_command(
        "export_trace", original["trace"]["id"], "--format", "otlp", "--output", str(otlp_path)
    )
    Trace.objects.all().delete()
    call_command("import_trace", str(otlp_path), "--format", "otlp")
    assert Trace.objects.get().steps.count() == 4


def test_retention_deletes_old_and_surplus_finished_traces_only():
    def make(name, age_days, status=Trace.Status.SUCCEEDED):
        t = Trace.objects.create(name=name, status=status)
        Trace.objects.filter(pk=t.pk).update(created_at=timezone.now() - timedelta(days=age_days))
        return t

    old = make("old", 40)
    old_running = make("old running", 40, Trace.Status.RUNNING)
    recent = [make(f"recent {i}", i) for i in range(5)]

    assert traces_apply_retention(max_age_days=30, max_count=0) == 1
    assert not Trace.objects.filter(pk=old.pk).exists()
    assert Trace.objects.filter(pk=old_running.pk).exists()

    assert traces_apply_retention(max_age_days=0, max_count=3) == 2
    assert set(Trace.objects.values_list("name", flat=True)) == {
        "recent 0",
        "recent 1",
        "recent 2",
        "old running",
    }
    assert traces_apply_retention(max_age_days=0, max_count=0) == 0
    assert recent


def test_an_idle_ingested_trace_closes_and_a_late_span_reopens_it():
    tid = new_trace_id()
    trace = ingest(request(span("root", trace_id=tid, error="boom")))
    assert traces_close_idle_ingested(idle_after=60) == []
    Trace.objects.filter(pk=trace.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5))

    (closed,) = traces_close_idle_ingested(idle_after=60)
    assert (closed.status, closed.error) == ("failed", "boom")

    ingest(request(span("late", trace_id=tid, parent=new_span_id())))
    trace.refresh_from_db()
    assert trace.status == Trace.Status.RUNNING
    assert trace.steps.count() == 2
    assert Step.objects.filter(trace=trace, name="late").exists()


def test_the_beat_task_applies_the_retention_settings(settings):
    from traces.tasks import traces_upkeep_task

    assert "traces.tasks.traces_upkeep_task" in {
        entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()
    }
    settings.TOOLTRAIL_RETENTION_MAX_TRACES = 2
    for i in range(4):
        Trace.objects.create(name=f"t{i}", status=Trace.Status.SUCCEEDED)
    traces_upkeep_task.apply()
    assert Trace.objects.count() == 2
