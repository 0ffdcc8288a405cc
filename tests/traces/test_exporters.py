"""Training-data exports: the three TRL formats, files, splits, reproducibility."""

from __future__ import annotations

import itertools
import json
import os
import re
from pathlib import Path

import pytest
from datasets import load_dataset
from django.core.management import CommandError, call_command
from trl.data_utils import is_conversational

from traces.export_services import dataset_export
from traces.exporters.files import ExportError
from traces.exporters.records import LabelRecord, StepRecord, TraceRecord, label_resolve
from traces.exporters.sft import sft_rows

GOLDEN = Path(__file__).parent / "golden"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

pytestmark = pytest.mark.django_db


def normalised(text: str) -> str:
    """Trace ids and step ids replaced by their order of appearance: the database
    makes new ones each run, everything else must stay byte for byte."""
    names: dict[str, str] = {}
    text = UUID.sub(lambda m: names.setdefault(m.group(0), f"trace-{len(names) + 1}"), text)
    steps: dict[str, str] = {}
    return re.sub(
        r'"step_id":(\d+)',
        lambda m: f'"step_id":"{steps.setdefault(m.group(1), f"step-{len(steps) + 1}")}"',
        text,
    )


def test_each_format_matches_its_golden_file(demo_queue, tmp_path):
    for fmt in ("sft", "dpo", "prm"):
        dataset_export(format=fmt, out_dir=tmp_path / fmt, queue_id=demo_queue.id)
        got = normalised((tmp_path / fmt / f"{fmt}.jsonl").read_text())
        golden = GOLDEN / f"{fmt}.jsonl"
        if os.environ.get("TOOLTRAIL_UPDATE_GOLDEN"):
            golden.write_text(got)
        assert got == golden.read_text(), f"{fmt} differs from {golden}"


def _load(out: Path, kind: str):
    """JSONL through the directory (its card names the files and their features, as
    the Hub reads it); Parquet by its files (the features are stored inside)."""
    cache = str(out / f"hf-cache-{kind}")
    if kind == "json":
        return load_dataset(str(out), cache_dir=cache)
    files = {"train": str(out / "train.parquet"), "test": str(out / "test.parquet")}
    return load_dataset("parquet", data_files=files, cache_dir=cache)


def test_every_format_loads_with_datasets_and_has_trls_columns(demo_queue, tmp_path):
    for fmt, kind in itertools.product(("sft", "dpo", "prm"), ("json", "parquet")):
        if kind == "json":
            dataset_export(format=fmt, out_dir=tmp_path / fmt, split=0.6, seed=3)
        ds = _load(tmp_path / fmt, kind)
        rows = list(ds["train"]) + list(ds["test"])
        assert rows
        if fmt == "sft":
            assert {"messages", "tools", "trace_id"} <= set(ds["train"].column_names)
            assert all(is_conversational(r) for r in rows)
            calls = [c for r in rows for m in r["messages"] for c in (m.get("tool_calls") or [])]
            assert calls and all(isinstance(c["function"]["arguments"], dict) for c in calls)
            # Each call keeps exactly its own arguments (no other tool's keys as nulls).
            assert {"expression": "(12 + 30) * 2"} in [c["function"]["arguments"] for c in calls]
            assert all(r["tools"] and r["tools"][0]["type"] == "function" for r in rows)
        if fmt == "dpo":
            assert {"prompt", "chosen", "rejected", "tools", "trace_id", "step_id"} <= set(
                ds["train"].column_names
            )
            assert all(is_conversational(r) for r in rows)
            for r in rows:
                assert r["chosen"][0]["role"] == r["rejected"][0]["role"] == "assistant"
                assert r["chosen"] != r["rejected"]
        if fmt == "prm":
            assert {"prompt", "completions", "labels", "trace_id"} <= set(ds["train"].column_names)
            for r in rows:
                assert isinstance(r["prompt"], str)
                assert len(r["completions"]) == len(r["labels"]) > 0
                assert all(isinstance(x, bool) for x in r["labels"])
            assert any(False in r["labels"] for r in rows)
        # Split by trace: a trace is never on both sides.
        train = {r["trace_id"] for r in ds["train"]}
        test = {r["trace_id"] for r in ds["test"]}
        assert train and test and not train & test


def test_the_same_export_twice_gives_byte_identical_data_files(demo_queue, tmp_path):
    for fmt in ("sft", "dpo", "prm"):
        for run in ("a", "b"):
            dataset_export(format=fmt, out_dir=tmp_path / run / fmt, split=0.5, seed=11)
        for name in ("train.jsonl", "test.jsonl", "train.parquet", "test.parquet"):
            assert (tmp_path / "a" / fmt / name).read_bytes() == (
                tmp_path / "b" / fmt / name
            ).read_bytes()


def test_the_dataset_card_names_counts_labels_agreement_and_source(demo_queue, tmp_path):
    dataset_export(format="sft", out_dir=tmp_path, queue_id=demo_queue.id)
    card = (tmp_path / "README.md").read_text()
    assert card.startswith(
        "---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n    path: sft.jsonl"
    )
    assert "| train | 4 | 4 | `sft.jsonl` | `sft.parquet` |" in card
    assert "- bad: 4 steps" in card and "- good: 22 steps" in card and "- wrong-tool: 1" in card
    assert "- kappa: 0.656" in card and "- alpha: 0.657" in card
    assert f'"queue": {demo_queue.id}' in card
    ds = load_dataset(str(tmp_path), cache_dir=str(tmp_path / "hf-cache"))  # the card's configs
    assert ds["train"].num_rows == 4


def test_sft_takes_good_traces_whole_and_corrected_ones_up_to_the_correction(demo_queue, tmp_path):
    dataset_export(format="sft", out_dir=tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "sft.jsonl").read_text().splitlines()]
    by_input = {r["messages"][1]["content"]: r for r in rows}
    assert "What is 2 to the power of 10?" not in by_input  # its final answer was judged bad
    paris = by_input["What time is it in Paris?"]["messages"]
    assert paris[-1]["role"] == "assistant" and len(paris) == 3  # truncated at the fix
    assert paris[-1]["tool_calls"][0]["function"] == {
        "name": "clock",
        "arguments": {"timezone": "Europe/Paris"},
    }
    km = by_input["Convert 5 km to miles."]
    assert km["messages"][-1]["tool_calls"][0]["function"]["name"] == "unit_convert"
    assert [t["function"]["name"] for t in km["tools"]] == ["calculator", "unit_convert"]
    whole = by_input["What is (12 + 30) * 2?"]["messages"]
    assert [m["role"] for m in whole] == ["system", "user", "assistant", "tool", "assistant"]


def test_gold_wins_and_ties_go_to_the_cautious_verdict():
    ana, ben = LabelRecord("good", author="ana"), LabelRecord("bad", "wrong-tool", author="ben")
    assert label_resolve([ana, ben]).verdict == "bad"
    assert label_resolve([ana, ben]).category == "wrong-tool"
    gold = LabelRecord("good", author="rev", gold=True)
    assert label_resolve([ana, ben, gold]) is gold
    assert label_resolve([]) is None


def test_sft_leaves_out_a_trace_with_a_bad_step_nobody_corrected():
    step = StepRecord(
        id=1,
        seq=1,
        kind="model_call",
        input={"messages": [{"role": "user", "content": "hi"}], "earlier_messages": 0},
        output={"content": "bye"},
        labels=[LabelRecord("bad")],
    )
    assert sft_rows([TraceRecord(trace_id="t", input="hi", steps=[step])]) == []
    step.labels = [LabelRecord("good")]
    assert sft_rows([TraceRecord(trace_id="t", input="hi", steps=[step])])[0]["messages"] == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "bye"},
    ]


def test_the_command_writes_the_layout_and_explains_bad_input(demo_queue, tmp_path, capsys):
    call_command(
        "export_dataset",
        "--format",
        "dpo",
        "--out",
        str(tmp_path / "d"),
        "--queue",
        str(demo_queue.id),
    )
    assert sorted(os.listdir(tmp_path / "d")) == ["README.md", "dpo.jsonl", "dpo.parquet"]
    assert "Exported dpo: train 2 rows from 5 labelled traces" in capsys.readouterr().out
    call_command(
        "export_dataset",
        "--format",
        "prm",
        "--out",
        str(tmp_path / "p"),
        "--filter",
        "agent=demo",
        "--split",
        "0.8",
    )
    assert sorted(os.listdir(tmp_path / "p")) == [
        "README.md",
        "test.jsonl",
        "test.parquet",
        "train.jsonl",
        "train.parquet",
    ]
    with pytest.raises(CommandError, match="there is no queue 999"):
        call_command(
            "export_dataset", "--format", "sft", "--out", str(tmp_path / "x"), "--queue", "999"
        )
    with pytest.raises(CommandError, match="unknown filter 'colour'"):
        call_command(
            "export_dataset",
            "--format",
            "sft",
            "--out",
            str(tmp_path / "x"),
            "--filter",
            "colour=red",
        )
    with pytest.raises(CommandError, match="nothing to export"):
        call_command(
            "export_dataset",
            "--format",
            "sft",
            "--out",
            str(tmp_path / "x"),
            "--filter",
            "agent=nobody",
        )
    with pytest.raises(CommandError, match="--split must be between 0 and 1"):
        call_command(
            "export_dataset", "--format", "sft", "--out", str(tmp_path / "x"), "--split", "2"
        )
    assert not (tmp_path / "x").exists()


def test_an_export_that_cannot_be_written_raises_before_writing(tmp_path, db):
    with pytest.raises(ExportError, match="unknown format 'csv'"):
        dataset_export(format="csv", out_dir=tmp_path / "x")
    assert not (tmp_path / "x").exists()
