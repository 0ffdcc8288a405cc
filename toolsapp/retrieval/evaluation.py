"""Retrieval quality on BEIR-layout files: Recall@K, NDCG@10 and query latency.

Files (the BEIR layout, https://github.com/beir-cellar/beir):
- ``corpus.jsonl``: ``{"_id", "title", "text"}`` a line — a tool: title is its name, text
  its description and arguments;
- ``queries.jsonl``: ``{"_id", "text"}`` a line;
- ``qrels.tsv``: tab-separated, header ``query-id corpus-id score``; a score above 0
  marks a relevant tool (and is its gain for NDCG).
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import encoder
from .index import METHODS, IndexedTool, ToolIndex
from .text import tool_document


class EvalInputError(ValueError):
    """A BEIR file is missing or malformed; the message names the file and line."""


@dataclass
class BeirData:
    doc_ids: list[str]
    documents: list[str]
    queries: dict[str, str]
    qrels: dict[str, dict[str, float]]
    skipped_qrels: int = 0
    notes: list[str] = field(default_factory=list)


def _jsonl(path: Path, required: tuple[str, ...]) -> Iterable[tuple[int, dict]]:
    try:
        fh = path.open(encoding="utf-8")
    except OSError as exc:
        raise EvalInputError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    with fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise EvalInputError(f"{path}:{number}: not JSON: {exc.msg}") from exc
            if not isinstance(row, dict):
                raise EvalInputError(f"{path}:{number}: expected a JSON object")
            missing = [key for key in required if key not in row]
            if missing:
                raise EvalInputError(f"{path}:{number}: missing {', '.join(map(repr, missing))}")
            yield number, row


def beir_load(*, corpus: Path, queries: Path, qrels: Path) -> BeirData:
    """Read and check the three files. Raises EvalInputError naming file and line."""
    doc_ids, documents, seen = [], [], set()
    for number, row in _jsonl(corpus, ("_id",)):
        doc_id = str(row["_id"])
        if doc_id in seen:
            raise EvalInputError(f"{corpus}:{number}: duplicate _id {doc_id!r}")
        seen.add(doc_id)
        doc_ids.append(doc_id)
        documents.append(
            tool_document(
                name=str(row.get("title") or ""),
                description=str(row.get("text") or ""),
                parameters=None,
            )
        )
    if not doc_ids:
        raise EvalInputError(f"{corpus}: no documents")
    query_text = {str(row["_id"]): str(row["text"]) for _, row in _jsonl(queries, ("_id", "text"))}
    judged: dict[str, dict[str, float]] = {}
    skipped = 0
    try:
        lines = qrels.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise EvalInputError(f"{qrels}: cannot read: {exc.strerror or exc}") from exc
    if not lines or lines[0].split("\t") != ["query-id", "corpus-id", "score"]:
        raise EvalInputError(f"{qrels}:1: the header must be 'query-id<TAB>corpus-id<TAB>score'")
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 3:
            raise EvalInputError(f"{qrels}:{number}: expected 3 tab-separated columns")
        try:
            score = float(parts[2])
        except ValueError as exc:
            raise EvalInputError(f"{qrels}:{number}: score {parts[2]!r} is not a number") from exc
        if parts[0] not in query_text or parts[1] not in seen:
            skipped += 1  # BEIR qrels often cover more than one split: judged elsewhere
            continue
        if score > 0:
            judged.setdefault(parts[0], {})[parts[1]] = score
    if not judged:
        raise EvalInputError(f"{qrels}: no relevant pair names a query and a document of the files")
    return BeirData(doc_ids, documents, query_text, judged, skipped)


def recall_at(ranked: list[str], relevant: dict[str, float], k: int) -> float:
    return len(set(ranked[:k]) & relevant.keys()) / len(relevant)


def ndcg_at(ranked: list[str], relevant: dict[str, float], k: int = 10) -> float:
    dcg = sum(relevant.get(d, 0.0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else 0.0


def _no_vectors(texts: list[str]) -> np.ndarray:
    return np.zeros((len(texts), encoder.DIMENSIONS), dtype=np.float32)


def index_build(data: BeirData, *, dense: bool) -> ToolIndex:
    """A throw-away index of the corpus (keys are row numbers). Without ``dense`` the
    vectors are left zero and the model is never loaded (BM25-only runs)."""
    index = ToolIndex(embed=encoder.embed if dense else _no_vectors)
    index.upsert(IndexedTool(key=i, text=t) for i, t in enumerate(data.documents))
    index.prepare(dense=dense)
    return index


def evaluate(
    index: ToolIndex,
    data: BeirData,
    *,
    method: str,
    ks: list[int],
    rrf_k: int | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> dict:
    """Mean Recall@K for each K, NDCG@10, and per-query latency p50/p95 of one method."""
    if method not in METHODS:
        raise EvalInputError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
    depth = max([*ks, 10])
    recalls: dict[int, list[float]] = {k: [] for k in ks}
    ndcgs, latencies = [], []
    extra = {"rrf_k": rrf_k} if rrf_k is not None else {}
    # Each method's latency includes embedding its queries, as a live search's does.
    encoder.cache_forget([data.queries[q] for q in data.qrels])
    for query_id, relevant in data.qrels.items():
        started = clock()
        hits = index.search(data.queries[query_id], k=depth, method=method, **extra)
        latencies.append((clock() - started) * 1000)
        ranked = [data.doc_ids[h.key] for h in hits]
        for k in ks:
            recalls[k].append(recall_at(ranked, relevant, k))
        ndcgs.append(ndcg_at(ranked, relevant, 10))
    result: dict = {"method": method}
    for k in ks:
        result[f"recall@{k}"] = round(statistics.fmean(recalls[k]), 4)
    result["ndcg@10"] = round(statistics.fmean(ndcgs), 4)
    result["p50_ms"] = round(_percentile(latencies, 50), 2)
    result["p95_ms"] = round(_percentile(latencies, 95), 2)
    return result
