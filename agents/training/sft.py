"""LoRA supervised fine-tuning (peft + TRL's SFTTrainer) of an artifact on an SFT export.

The dataset directory is what ``export_dataset --format sft`` writes: ``sft.jsonl``, or
``train.jsonl`` (and ``test.jsonl``) with a split; rows are TRL's conversational format
with tools. Conversations are rendered with the base model's chat template (tools written
as ``agents.training.chat_format`` says when the template has no tool support).

Checkpoints go under the job's work folder, so a cancelled job can be resumed (a new job
with ``resume_from``: the old job's id). The output artifact holds the merged weights
(loadable like any model) and the LoRA adapter under ``adapter/``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from .artifacts import artifact_register, artifacts_dir
from .chat_format import flatten_messages, template_supports_tools
from .jobs import JobCancelled, JobContext, JobError
from .models import Job, ModelArtifact

DEFAULTS: dict[str, Any] = {
    "steps": 30,
    "lora_r": 8,
    "learning_rate": 2e-4,
    "batch_size": 2,
    "max_length": 512,
    "seed": 0,
}


def sft_rows(directory: Path) -> list[dict[str, Any]]:
    """The training rows of an SFT export directory."""
    directory = Path(directory)
    for name in ("train.jsonl", "sft.jsonl"):
        path = directory / name
        if path.is_file():
            break
    else:
        raise JobError(
            f"{directory} has no sft.jsonl or train.jsonl (write one with export_dataset --format sft)"
        )
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise JobError(f"{path}, line {number}: not JSON ({exc})") from exc
        if not isinstance(row, dict) or not isinstance(row.get("messages"), list):
            raise JobError(
                f"{path}, line {number}: a row needs 'messages' (TRL conversational format)"
            )
        rows.append(row)
    if not rows:
        raise JobError(f"{path} holds no rows")
    return rows


def work_dir(job: Job) -> Path:
    path = artifacts_dir() / ".jobs" / str(job.id)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _last_checkpoint(path: Path) -> str | None:
    checkpoints = sorted(path.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    return str(checkpoints[-1]) if checkpoints else None


def sft_job_run(job: Job, context: JobContext) -> None:
    import torch
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    settings = {**DEFAULTS, **job.config}
    base = ModelArtifact.objects.filter(name=settings.get("base")).first()
    if base is None:
        raise JobError(f"no base artifact named {settings.get('base')!r}")
    rows = sft_rows(Path(settings["dataset"]))
    output = artifacts_dir() / job.name
    if output.exists():
        raise JobError(f"{output} exists already")
    torch.manual_seed(int(settings["seed"]))
    context.log(f"{len(rows)} conversations from {settings['dataset']}; base {base.name}")

    tokenizer = AutoTokenizer.from_pretrained(base.path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    native = template_supports_tools(tokenizer.chat_template)
    texts = [
        {
            "messages": row["messages"]
            if native
            else flatten_messages(row["messages"], row.get("tools") or [])
        }
        for row in rows
    ]
    model = AutoModelForCausalLM.from_pretrained(base.path, dtype=torch.float32)
    lora = LoraConfig(
        r=int(settings["lora_r"]),
        lora_alpha=2 * int(settings["lora_r"]),
        lora_dropout=0.0,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, lora)
    steps = int(settings["steps"])
    checkpoints = work_dir(job) / "checkpoints"

    class Report(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                context.metric(loss=round(float(logs["loss"]), 5), step=state.global_step)
                context.log(f"step {state.global_step}/{steps} loss {logs['loss']:.4f}")

        def on_step_end(self, args, state, control, **kwargs):
            context.progress(0.95 * state.global_step / steps, f"step {state.global_step}/{steps}")
            if context.cancelled():
                control.should_training_stop = True
                control.should_save = True  # a checkpoint to resume from

    config = SFTConfig(
        output_dir=str(checkpoints),
        max_steps=steps,
        per_device_train_batch_size=int(settings["batch_size"]),
        learning_rate=float(settings["learning_rate"]),
        logging_steps=1,
        save_steps=max(5, steps // 3),
        save_total_limit=2,
        report_to=[],
        use_cpu=context.device == "cpu",
        max_length=int(settings["max_length"]),
        seed=int(settings["seed"]),
        dataloader_num_workers=0,
        disable_tqdm=True,
        bf16=False,
    )
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=Dataset.from_list(texts),
        processing_class=tokenizer,
        callbacks=[Report()],
    )
    resume = None
    if settings.get("resume_from"):
        resume = _last_checkpoint(
            artifacts_dir() / ".jobs" / str(settings["resume_from"]) / "checkpoints"
        )
        if resume is None:
            raise JobError(f"job {settings['resume_from']} left no checkpoint to resume from")
        context.log(f"resuming from {resume}")
    trainer.train(resume_from_checkpoint=resume)
    if context.cancelled():
        raise JobCancelled("cancelled by a user; the last checkpoint is kept for resume")
    losses = job.metrics.get("loss_series") or []
    context.metric(
        loss_first=losses[0] if losses else None, loss_last=losses[-1] if losses else None
    )

    context.progress(0.96, "saving the adapter and the merged weights")
    partial = Path(tempfile.mkdtemp(prefix=f".{job.name}.partial-", dir=artifacts_dir()))
    try:
        model.save_pretrained(str(partial / "adapter"))
        merged = model.merge_and_unload()
        merged.save_pretrained(str(partial), safe_serialization=True)
        tokenizer.save_pretrained(str(partial))
        os.rename(partial, output)
    finally:
        if partial.exists():
            shutil.rmtree(partial, ignore_errors=True)
    artifact = artifact_register(
        name=job.name,
        path=output,
        source=ModelArtifact.Source.JOB,
        parents=[base],
        job=job,
        config={"sft": {k: settings[k] for k in sorted(settings)}},
    )
    Job.objects.filter(pk=job.pk).update(output=artifact)
    context.log(f"artifact {artifact.name} ({artifact.parameters:,} parameters)")
