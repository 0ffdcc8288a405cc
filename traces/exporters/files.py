"""Writing an export: JSONL and Parquet data files, a train/test split by trace, and
a dataset card. Data files are byte-identical for the same rows and seed (no dates,
no random state, fixed key order); only the card carries the export date."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

# Column kinds → the dataset card's feature YAML. Messages and tool specs are
# ``datasets.Json``: their objects (tool arguments, schemas) differ from row to row,
# which Arrow structs cannot hold without filling every row with every key as null.
CARD_FEATURES = {
    "json_list": "list: json",
    "string": "dtype: string",
    "int64": "dtype: int64",
    "string_list": "list: string",
    "bool_list": "list: bool",
}


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


def features_for(columns: dict[str, str]):
    """The ``datasets.Features`` of an exporter's columns."""
    from datasets import Features, Json, List, Value

    kinds = {
        "json_list": lambda: List(Json()),
        "string": lambda: Value("string"),
        "int64": lambda: Value("int64"),
        "string_list": lambda: List(Value("string")),
        "bool_list": lambda: List(Value("bool")),
    }
    return Features({name: kinds[kind]() for name, kind in columns.items()})


def parquet_write(rows: list[dict[str, Any]], path: Path, columns: dict[str, str]) -> None:
    """Parquet with the features stored in it, so ``load_dataset("parquet", …)`` gives
    back the objects as they were (JSON columns), whatever keys each row has."""
    import datasets

    # An export's output is its summary line, not a progress bar per file.
    was_enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        datasets.Dataset.from_list(rows, features=features_for(columns)).to_parquet(str(path))
    finally:
        if was_enabled:
            datasets.enable_progress_bars()


def card_text(
    *,
    format: str,
    columns: dict[str, str],
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
    lines += ["dataset_info:", "  features:"]
    for name, kind in columns.items():
        lines += [f"  - name: {name}", f"    {CARD_FEATURES[kind]}"]
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
    columns: dict[str, str],
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
        parquet_write(split_rows, out_dir / f"{stem}.parquet", columns)
        written += [f"{stem}.jsonl", f"{stem}.parquet"]
    (out_dir / "README.md").write_text(
        card_text(
            format=format,
            columns=columns,
            splits=splits,
            files=names,
            stats=stats,
            exported_at=exported_at,
        )
    )
    written.append("README.md")
    return {"files": written, "rows": {k: len(v) for k, v in splits.items()}}
