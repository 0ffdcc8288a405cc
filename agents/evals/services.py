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
