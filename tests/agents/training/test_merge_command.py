"""python manage.py merge_models: thin wrapper over the driver."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from .conftest import output_load


def test_merge_models_command_writes_the_model_and_reports_time_and_memory(models):
    cfg = models.config(
        {
            "merge_method": "ties",
            "base_model": str(models.base),
            "models": [
                {"model": str(p), "parameters": {"weight": 0.3, "density": 0.5}} for p in models.fts
            ],
            "dtype": "bfloat16",
        }
    )
    stdout, stderr = io.StringIO(), io.StringIO()
    out = models.root / "merged"
    call_command(
        "merge_models",
        str(cfg),
        str(out),
        "--seed",
        "3",
        "--shard-size",
        "4k",
        stdout=stdout,
        stderr=stderr,
    )
    assert len(output_load(out)) == len(models.tensors[models.base])
    assert len(list(out.glob("model-*.safetensors"))) > 1
    report = stdout.getvalue()
    assert "time " in report and "peak memory" in report
    assert "tensors" in stderr.getvalue()  # the progress bar counts tensors


def test_merge_models_command_turns_merge_errors_into_command_errors(models):
    cfg = models.config(
        {"merge_method": "ties", "base_model": str(models.base), "models": [], "bogus": 1}
    )
    with pytest.raises(CommandError, match="unknown config key.*bogus"):
        call_command("merge_models", str(cfg), str(models.root / "merged"))
    assert not (models.root / "merged").exists()
