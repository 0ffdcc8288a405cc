"""Writing an export: JSONL and Parquet data files, a train/test split by trace, and
a dataset card. Data files are byte-identical for the same rows and seed (no dates,
no random state, fixed key order); only the card carries the export date."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq


class ExportError(ValueError):
    """The export cannot be written as asked; nothing was written."""


def split_by_trace(rows: list[dict[str, Any]], *, split: float, seed: int) -> dict[str, list]:
    """Train and test rows, every trace wholly on one side. Traces are ordered by a
    hash of (seed, trace id) and the first ``round(n * split)`` go to train (at least
    one trace on each side)."""
    if not 0 < split < 1:
        raise ExportError("--split must be between 0 and 1 (the train share), e.g. 0.9")
    traces = sorted(
        {row["trace_id"] for row in rows},
        key=lambda t: hashlib.sha256(f"{seed}:{t}".encode()).hexdigest(),
    )
    if len(traces) < 2:
        raise ExportError(
            f"a split needs rows from at least 2 traces; this export has {len(traces)}"
        )
    n_train = min(max(round(len(traces) * split), 1), len(traces) - 1)
    train = set(traces[:n_train])
    return {
        "train": [r for r in rows if r["trace_id"] in train],
        "test": [r for r in rows if r["trace_id"] not in train],
    }


def jsonl_bytes(rows: list[dict[str, Any]]) -> bytes:
    return b"".join(
        json.dumps(row, ensure_ascii=False, separators=(",", ":")).encode() + b"\n" for row in rows
    )


def parquet_write(rows: list[dict[str, Any]], path: Path) -> None:
    try:
        table = pa.Table.from_pylist(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise ExportError(
            f"these rows cannot be stored as Parquet (one type per field is needed): {exc}"
        ) from exc
    pq.write_table(table, path, compression="zstd", write_statistics=False)


def card_text(
    *,
    format: str,
    splits: dict[str, list[dict[str, Any]]],
    files: dict[str, str],
    stats: dict[str, Any],
    exported_at: str,
) -> str:
    """The dataset card: a Hub-style README with YAML front matter naming the data files
    (so ``load_dataset(DIR)`` finds the JSONL splits) and the counts behind them."""
    lines = ["---", "configs:", "- config_name: default", "  data_files:"]
    for split in splits:
        lines += [f"  - split: {split}", f"    path: {files[split]}.jsonl"]
    lines += ["tags:", "- tooltrail", "- trl", f"- {format}", "---", ""]
    lines += [f"# Tooltrail {format.upper()} export", "", f"Exported {exported_at}.", ""]
    lines += ["| split | rows | traces | JSONL | Parquet |", "|---|---|---|---|---|"]
    for split, rows in splits.items():
        n_traces = len({r["trace_id"] for r in rows})
        lines.append(
            f"| {split} | {len(rows)} | {n_traces} | `{files[split]}.jsonl` | `{files[split]}.parquet` |"
        )
    lines += ["", "## Labels", ""]
    for key, value in sorted(stats["verdicts"].items()):
        lines.append(f"- {key}: {value} steps")
    if stats["categories"]:
        lines += ["", "Error categories:", ""]
        lines += [f"- {k}: {v}" for k, v in sorted(stats["categories"].items())]
    lines += ["", "## Agreement", ""]
    agreement = stats["agreement"]
    for name in ("kappa", "alpha"):
        value = agreement.get(name)
        lines.append(f"- {name}: {'n/a' if value is None else f'{value:.3f}'}")
    lines.append(f"- steps labelled by two or more people: {agreement.get('units', 0)}")
    lines += [
        "",
        "## Source",
        "",
        f"```json\n{json.dumps(stats['source'], indent=2, sort_keys=True)}\n```",
        "",
    ]
    return "\n".join(lines)


def export_write(
    *,
    format: str,
    rows: list[dict[str, Any]],
    out_dir: Path,
    split: float | None,
    seed: int,
    stats: dict[str, Any],
    exported_at: str,
) -> dict[str, Any]:
    """Write the data files and the card into ``out_dir``: ``<format>.jsonl`` and
    ``<format>.parquet``, or ``train``/``test`` of each with a split. Returns what was
    written: ``{"files": [...], "rows": {split: n}}``."""
    if not rows:
        raise ExportError("nothing to export: no labelled trace gives a row in this format")
    splits = split_by_trace(rows, split=split, seed=seed) if split else {"train": rows}
    names = {"train": "train", "test": "test"} if split else {"train": format}
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for split_name, split_rows in splits.items():
        stem = names[split_name]
        (out_dir / f"{stem}.jsonl").write_bytes(jsonl_bytes(split_rows))
        parquet_write(split_rows, out_dir / f"{stem}.parquet")
        written += [f"{stem}.jsonl", f"{stem}.parquet"]
    (out_dir / "README.md").write_text(
        card_text(format=format, splits=splits, files=names, stats=stats, exported_at=exported_at)
    )
    written.append("README.md")
    return {"files": written, "rows": {k: len(v) for k, v in splits.items()}}
