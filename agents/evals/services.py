"""Writes of evaluation data: importing datasets, creating and running experiments."""

from __future__ import annotations

from pathlib import Path

from django.db import transaction

from .datasets import (
    FORMAT_BFCL,
    FORMAT_JSONL,
    DatasetFileError,
    ItemData,
    bfcl_items_parse,
    jsonl_items_parse,
)
from .models import Dataset, DatasetItem


class EvalError(Exception):
    """An evaluation action cannot be done; the message says why."""


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError as exc:
        raise DatasetFileError(f"{path}: no such file") from exc
    except UnicodeDecodeError as exc:
        raise DatasetFileError(
            f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from exc
    except OSError as exc:
        raise DatasetFileError(f"{path}: cannot be read: {exc.strerror or exc}") from exc


def dataset_items_parse(
    *, format: str, questions: Path, answers: Path | None = None
) -> list[ItemData]:
    """Read a dataset file (and its answers) into items, or raise DatasetFileError."""
    return dataset_items_from_lines(
        format=format,
        questions=_read_lines(questions),
        answers=_read_lines(answers) if answers else None,
        questions_name=str(questions),
        answers_name=str(answers) if answers else "answers",
    )


def dataset_items_from_lines(
    *,
    format: str,
    questions: list[str],
    answers: list[str] | None = None,
    questions_name: str = "questions",
    answers_name: str = "answers",
) -> list[ItemData]:
    """The same from lines already read (an upload)."""
    if format == FORMAT_BFCL:
        return bfcl_items_parse(
            questions, answers, questions_name=questions_name, answers_name=answers_name
        )
    if format == FORMAT_JSONL:
        if answers:
            raise DatasetFileError("an answers file is for BFCL; our JSONL carries its answers")
        return jsonl_items_parse(questions, name=questions_name)
    raise DatasetFileError(f"unknown format {format!r}: use bfcl or jsonl")


def dataset_create(
    *, name: str, format: str, items: list[ItemData], description: str = "", user=None
) -> Dataset:
    """Create a dataset with its items in one transaction (nothing half-imported).

    Raises EvalError when the name is taken or there are no items."""
    if not items:
        raise EvalError("the file holds no items")
    if Dataset.objects.filter(name=name).exists():
        raise EvalError(f"a dataset named {name!r} exists already; pick another name")
    with transaction.atomic():
        dataset = Dataset.objects.create(
            name=name,
            format=format,
            description=description,
            item_count=len(items),
            created_by=user if user is not None and user.is_authenticated else None,
        )
        DatasetItem.objects.bulk_create(
            [
                DatasetItem(
                    dataset=dataset,
                    index=index,
                    external_id=item.external_id[:200],
                    category=item.category[:64],
                    language=item.language,
                    messages=item.messages,
                    functions=item.functions,
                    function_format=item.function_format,
                    expected_calls=item.expected_calls,
                    expected_answer=item.expected_answer,
                )
                for index, item in enumerate(items)
            ],
            batch_size=500,
        )
    return dataset


def dataset_from_queue(*, queue_id: int, name: str, user=None) -> Dataset:
    """A dataset from the corrected calls of an annotation queue: each corrected tool call
    becomes an item whose messages are the conversation before that model reply, whose
    functions are the tools it was offered, and whose expected call is the correction.
    (The same rows TRL's DPO export has as prompt and chosen reply.)"""
    from traces.annotation_selectors import trace_records
    from traces.export_services import export_trace_ids
    from traces.exporters.dpo import dpo_rows
    from traces.exporters.files import ExportError

    try:
        trace_ids = export_trace_ids(queue_id=queue_id)
    except ExportError as exc:
        raise EvalError(str(exc)) from exc
    items = []
    for row in dpo_rows(trace_records(trace_ids=trace_ids)):
        calls = [
            {"name": c["function"]["name"], "arguments": c["function"].get("arguments") or {}}
            for c in (row["chosen"][0].get("tool_calls") or [])
        ]
        user_turns = [m for m in row["prompt"] if m.get("role") == "user"]
        items.append(
            ItemData(
                external_id=f"{row['trace_id'][:8]}-{row['step_id']}",
                messages=[m for m in row["prompt"] if m.get("role") != "system"],
                functions=[t.get("function", t) for t in row["tools"]],
                expected_calls=calls,
                category="corrected_call",
            )
        )
        if not user_turns:
            items.pop()  # nothing asked: not an evaluation item
    if not items:
        raise EvalError(f"queue {queue_id} has no corrected calls to make items from")
    return dataset_create(
        name=name,
        format=Dataset.Format.TRACES,
        items=items,
        description=f"Corrected calls of annotation queue {queue_id}",
        user=user,
    )
