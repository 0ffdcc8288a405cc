"""A LoRA fine-tune of the embedded SmolLM2-135M on CPU: a tiny run whose loss goes down,
saved as an artifact (merged weights + adapter) that an hf endpoint serves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.management import call_command

from agents.training.chat_format import flatten_messages, parse_reply
from agents.training.models import Job, ModelArtifact

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CALC = {
    "type": "function",
    "function": {
        "name": "calc",
        "description": "math",
        "parameters": {"type": "object", "properties": {"e": {"type": "string"}}},
    },
}


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
