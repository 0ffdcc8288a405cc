"""python manage.py merge_models: thin wrapper over the driver."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

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


def test_manage_py_merge_models_merges_and_exits_non_zero_on_a_bad_config(models):
    """`manage.py merge_models` skips django.setup() (start-up time); it still merges,
    reports, and exits non-zero with the message on a bad config."""
    manage = Path(__file__).resolve().parents[3] / "manage.py"
    data = {
        "merge_method": "linear",
        "models": [{"model": str(p), "parameters": {"weight": 0.5}} for p in models.fts[:2]],
    }
    out = models.root / "merged"
    done = subprocess.run(
        [sys.executable, str(manage), "merge_models", str(models.config(data)), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert f"into {out}" in done.stdout and "peak memory" in done.stdout
    assert len(output_load(out)) == len(models.tensors[models.base])

    bad = models.config({**data, "bogus": 1}, name="bad.yml")
    done = subprocess.run(
        [sys.executable, str(manage), "merge_models", str(bad), str(models.root / "other")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1 and "unknown config key" in done.stderr
    assert not (models.root / "other").exists()
