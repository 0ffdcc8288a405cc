"""A LoRA fine-tune of the embedded SmolLM2-135M on CPU: a tiny run whose loss goes down,
saved as an artifact (merged weights + adapter) that an hf endpoint serves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.management import call_command

from agents.training import jobs
from agents.training.artifacts import artifacts_dir
from agents.training.chat_format import flatten_messages, parse_reply
from agents.training.models import Job, ModelArtifact
from agents.training.sft import work_dir

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CALC = {
    "type": "function",
    "function": {
        "name": "calc",
        "description": "math",
        "parameters": {"type": "object", "properties": {"e": {"type": "string"}}},
    },
}


def sft_export(tmp_path: Path) -> Path:
    """A tiny SFT export (four one-turn conversations), as ``export_dataset`` writes it."""
    data = tmp_path / "export"
    data.mkdir()
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"Say {word}"},
                {"role": "assistant", "content": f"{word} {word} {word}"},
            ],
            "trace_id": word,
        }
        for word in ("apple", "river", "stone", "cloud")
    ]
    (data / "sft.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return data


def test_tool_calls_are_written_and_read_back_the_same_way():
    messages = [
        {"role": "user", "content": "2+2"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "1",
                    "type": "function",
                    "function": {"name": "calc", "arguments": '{"e": "2+2"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "1", "content": "4"},
    ]
    flat = flatten_messages(messages, [CALC])
    assert flat[0]["role"] == "system" and '"name": "calc"' in flat[0]["content"]
    assert (
        flat[2]["content"] == '<tool_call>{"arguments": {"e": "2+2"}, "name": "calc"}</tool_call>'
    )
    assert flat[3] == {"role": "user", "content": "<tool_response>4</tool_response>"}
    content, calls = parse_reply(
        'Sure.\n<tool_call>{"name": "calc", "arguments": {"e": "3*3"}}</tool_call>'
    )
    assert content == "Sure." and calls == [("calc", '{"e": "3*3"}')]


@pytest.mark.timeout(900)  # de-quantising and training on CPU: about a minute on an idle machine
def test_a_tiny_lora_run_lowers_the_loss_and_saves_an_artifact(smollm2, settings, tmp_path, capsys):
    assert smollm2.parameters == 134515008 and smollm2.dtype == "float32"
    capsys.readouterr()
    data = sft_export(tmp_path)

    call_command(
        "job_run",
        "sft",
        "--base",
        "smol",
        "--dataset",
        str(data),
        "--name",
        "smol-tuned",
        "--steps",
        "8",
        "--lora-r",
        "4",
        "--learning-rate",
        "0.003",
        "--batch-size",
        "4",
        "--max-length",
        "64",
        "--here",
    )

    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["status"] == "succeeded" and out["artifact"] == "smol-tuned"
    assert out["metrics"]["loss_last"] < out["metrics"]["loss_first"]
    tuned = ModelArtifact.objects.get(name="smol-tuned")
    assert list(tuned.parents.values_list("name", flat=True)) == ["smol"]
    assert (Path(tuned.path) / "adapter" / "adapter_config.json").is_file()
    assert (
        tuned.parameters == ModelArtifact.objects.get(name="smol").parameters
        or tuned.parameters > 0
    )
    job = Job.objects.get(pk=out["job"])
    assert len(job.metrics["loss_series"]) == 8


@pytest.mark.timeout(900)
def test_a_cancelled_run_keeps_its_checkpoint_and_a_resumed_run_continues_from_it(
    smollm2, tmp_path, monkeypatch
):
    config = {
        "base": "smol",
        "dataset": str(sft_export(tmp_path)),
        "steps": 4,
        "lora_r": 4,
        "learning_rate": 0.003,
        "batch_size": 4,
        "max_length": 64,
        "seed": 0,
    }
    cut = jobs.job_create(kind=Job.Kind.SFT, name="smol-cut", config=config)
    # A user presses cancel while step 2 is being reported: the real cancel service,
    # called at a known step so the test does not depend on timing.
    report = jobs.JobContext.progress

    def progress(self, fraction, message=""):
        report(self, fraction, message)
        if self.job.pk == cut.pk and message == "step 2/4":
            jobs.job_cancel(job_id=cut.pk)

    monkeypatch.setattr(jobs.JobContext, "progress", progress)

    jobs.job_run(job_id=cut.pk)

    cut.refresh_from_db()
    assert cut.status == Job.Status.CANCELLED
    assert "checkpoint is kept" in cut.error
    assert len(cut.metrics["loss_series"]) == 2  # it stopped within one optimizer step
    kept = sorted(p.name for p in (work_dir(cut) / "checkpoints").glob("checkpoint-*"))
    assert kept == ["checkpoint-2"]
    assert cut.output is None and not ModelArtifact.objects.filter(name="smol-cut").exists()
    assert not any("smol-cut" in p.name for p in artifacts_dir().iterdir())  # nor a .partial

    resumed = jobs.job_create(
        kind=Job.Kind.SFT, name="smol-resumed", config={**config, "resume_from": cut.pk}
    )
    jobs.job_run(job_id=resumed.pk)

    resumed.refresh_from_db()
    assert resumed.status == Job.Status.SUCCEEDED, resumed.error
    assert "checkpoint-2" in resumed.log
    # steps 3 and 4 only: it went on from the checkpoint, not from step 0
    assert len(resumed.metrics["loss_series"]) == 2
    assert "step 3/4" in resumed.log and "step 1/4" not in resumed.log
    artifact = ModelArtifact.objects.get(name="smol-resumed")
    assert resumed.output == artifact
    assert (Path(artifact.path) / "adapter" / "adapter_config.json").is_file()
