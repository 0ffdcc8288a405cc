"""Reading BFCL candidate files (the oracle's layout) and scoring them in bulk."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .scorers.bfcl_ast import bfcl_check

REQUIRED_FIELDS = ("candidate_id", "category", "functions", "model_output")


class CandidateFileError(ValueError):
    """A candidates file cannot be read; the message names the line."""


@dataclass
class ScoredCandidate:
    candidate_id: str
    valid: bool
    error_type: str | None
    official_valid: bool | None

    def as_row(self) -> dict[str, Any]:
        return {
            "candidate_id": self.candidate_id,
            "valid": self.valid,
            "error_type": self.error_type,
        }


def _open(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8")


def candidates_read(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, candidate) for each non-blank line; raise CandidateFileError
    naming the line for anything that is not a candidate object."""
    try:
        handle = _open(path)
    except OSError as exc:
        raise CandidateFileError(f"{path}: cannot be read: {exc.strerror or exc}") from exc
    with handle:
        try:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise CandidateFileError(
                        f"{path}, line {number}: not JSON ({exc.msg} at column {exc.colno})"
                    ) from exc
                if not isinstance(row, dict):
                    raise CandidateFileError(f"{path}, line {number}: expected a JSON object")
                missing = [f for f in REQUIRED_FIELDS if f not in row]
                if missing:
                    raise CandidateFileError(
                        f"{path}, line {number}: missing field(s) {', '.join(missing)}"
                    )
                if not isinstance(row["functions"], list | dict):
                    raise CandidateFileError(
                        f"{path}, line {number}: 'functions' must be a list of function docs"
                    )
                yield number, row
        except (UnicodeDecodeError, EOFError, gzip.BadGzipFile) as exc:
            raise CandidateFileError(f"{path}: not a UTF-8 JSON Lines file ({exc})") from exc


def candidate_score(row: dict[str, Any], *, line: int = 0) -> ScoredCandidate:
    try:
        verdict = bfcl_check(
            category=str(row["category"]),
            functions=row["functions"],
            ground_truth=row.get("ground_truth"),
            model_output=row["model_output"],
            language=str(row.get("language") or "python"),
        )
    except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
        # A case whose function docs or answer lack what the checker reads.
        raise CandidateFileError(
            f"line {line}: candidate {row.get('candidate_id')!r} cannot be scored: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    official = row.get("official_valid")
    return ScoredCandidate(
        candidate_id=str(row["candidate_id"]),
        valid=verdict.valid,
        error_type=verdict.error_type,
        official_valid=official if isinstance(official, bool) else None,
    )
