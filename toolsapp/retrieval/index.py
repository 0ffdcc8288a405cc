"""An in-memory tool index: BM25 over terms, cosine over MiniLM vectors, fused by
reciprocal-rank fusion. It knows tools by an integer key and nothing of the database
(``store.py`` keeps it in step with the ``Tool`` table; the eval command and the
benchmark fill throw-away ones directly).

Updates are incremental: upserting or removing a tool touches its row of the dense
matrix and its term list, and embeds only new or changed text. The lexical side
(``lexical.py``) keeps BM25's statistics as counts and scores at query time, so a
change updates those counts at once instead of rebuilding the index
(``bench/tool_search.py`` prints what one change costs at 50,000 tools).
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import tempfile
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import encoder
from .lexical import LexicalIndex
from .text import requests, terms

METHODS = ("hybrid", "bm25", "dense")
# The usual RRF constant (Cormack et al. 2009); ``tool_retrieval_eval`` shows the effect.
RRF_K = 60
# How deep each ranking goes into the fusion.
FUSION_DEPTH = 100
# The dense scan reads an int8 copy of the vectors (each row scaled by its largest
# component: a quarter of float32's memory, and a scan memory-bound at 50,000 tools takes
# a third of bfloat16's time) and keeps this many candidates per result wanted (at least
# DENSE_MIN_CANDIDATES), which it then scores exactly in float32: the scores and the order
# returned are float32 cosines. The int8 copy (with the query in bfloat16) moves a cosine
# by ~2e-3 at most, far less than the gap between a top result and the candidates four
# times further down.
DENSE_CANDIDATES_PER_RESULT = 4
DENSE_MIN_CANDIDATES = 200
# A toolset at most this share of the index is scored exactly, its rows only.
DENSE_SUBSET_SHARE = 0.25
FORMAT_VERSION = 1


@dataclass(frozen=True)
class IndexedTool:
    key: int
    text: str


@dataclass
class Hit:
    key: int
    score: float
    ranks: dict[str, int] = field(default_factory=dict)


def text_hash(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


@functools.cache
def _blas():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _int8_rows(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row as int8 and the scale that gives it back (row ≈ int8 × scale)."""
    scales = np.abs(vectors).max(axis=1, initial=0.0) / 127
    scales = np.maximum(scales, 1e-12).astype(np.float32)
    return np.rint(vectors / scales[:, None]).astype(np.int8), scales


class CoarseVectors:
    """The int8 copy of the vectors the dense scan reads (torch tensors)."""

    def __init__(self, vectors: np.ndarray) -> None:
        import torch

        rows, scales = _int8_rows(vectors)
        self.rows = torch.from_numpy(np.ascontiguousarray(rows))
        self.scales = torch.from_numpy(scales).to(torch.bfloat16)

    def set(self, row: int, vector: np.ndarray) -> None:
        import torch

        rows, scales = _int8_rows(vector[None, :])
        self.rows[row] = torch.from_numpy(rows[0])
        self.scales[row] = float(scales[0])

    def scores(self, queries: np.ndarray) -> np.ndarray:
        """Approximate cosines: per row, the best over the query's vectors (float32)."""
        import torch

        query = torch.from_numpy(np.ascontiguousarray(queries)).to(torch.bfloat16)
        # One pass of int8 weights against bfloat16 activations (the CPU kernel behind
        # torch's int8 weight-only quantization): 2.8 ms at 50,000 x 384 on one core,
        # against 8.8 ms for the same product in bfloat16.
        product = torch.ops.aten._weight_int8pack_mm(query, self.rows, self.scales)
        return product.amax(dim=0).float().numpy()


def _top(scores: np.ndarray, depth: int) -> np.ndarray:
    """Row numbers of the ``depth`` highest finite scores, best first."""
    finite = np.flatnonzero(np.isfinite(scores))
    if finite.size > depth:
        part = np.argpartition(-scores[finite], depth - 1)[:depth]
        finite = finite[part]
    return finite[np.argsort(-scores[finite], kind="stable")]


class ToolIndex:
    """Thread-safe for concurrent searches and updates (one lock; searches are short)."""

    def __init__(self, *, embed: Callable[[list[str]], np.ndarray] = encoder.embed) -> None:
        self._embed = embed
        self.keys: list[int] = []
        self.rows: dict[int, int] = {}
        self.texts: list[str] = []
        self.hashes: list[str] = []
        self.terms: list[list[str]] = []
        self.vectors = np.zeros((0, encoder.DIMENSIONS), dtype=np.float32)
        self.meta: dict = {}
        self._lexical = LexicalIndex()
        self._coarse: CoarseVectors | None = None  # made on the first search
        self.lock = threading.RLock()

    def __len__(self) -> int:
        return len(self.keys)

    # --- updates ----------------------------------------------------------------------

    def upsert(self, tools: Iterable[IndexedTool]) -> int:
        """Add or replace tools; embeds only texts it has no vector for. Returns how
        many texts were embedded. Embedding runs outside the lock: searches go on."""
        tools = list(tools)
        with self.lock:
            known = set(self.hashes)
            fresh = sorted({t.text for t in tools if text_hash(t.text) not in known})
        fresh_vectors = dict(zip(fresh, self._embed(fresh), strict=True))
        with self.lock:
            # Same text under another key (a tool copied between sources): reuse its vector.
            by_hash = {h: r for r, h in enumerate(self.hashes)}
            new_rows = []
            for tool in tools:
                digest = text_hash(tool.text)
                row = self.rows.get(tool.key)
                if row is not None and self.hashes[row] == digest:
                    continue
                if tool.text in fresh_vectors:
                    vector = fresh_vectors[tool.text]
                else:
                    vector = self.vectors[by_hash[digest]].copy()
                if row is None:
                    self.rows[tool.key] = len(self.keys)
                    self.keys.append(tool.key)
                    self.texts.append(tool.text)
                    self.hashes.append(digest)
                    self.terms.append(terms(tool.text))
                    self._lexical.set(len(self.keys) - 1, self.terms[-1])
                    new_rows.append(vector)
                else:
                    self.texts[row] = tool.text
                    self.hashes[row] = digest
                    self.terms[row] = terms(tool.text)
                    self._lexical.set(row, self.terms[row])
                    self.vectors[row] = vector
                    if self._coarse is not None:
                        self._coarse.set(row, self.vectors[row])
            if new_rows:
                self.vectors = np.vstack([self.vectors, np.asarray(new_rows, dtype=np.float32)])
                self._coarse = None
            return len(fresh)

    def remove(self, keys: Iterable[int]) -> int:
        """Drop tools (unknown keys are ignored). Returns how many were dropped."""
        with self.lock:
            drop = sorted({self.rows[k] for k in keys if k in self.rows})
            if not drop:
                return 0
            keep = np.ones(len(self.keys), dtype=bool)
            keep[drop] = False
            kept = np.flatnonzero(keep)
            self.keys = [self.keys[i] for i in kept]
            self.texts = [self.texts[i] for i in kept]
            self.hashes = [self.hashes[i] for i in kept]
            self.terms = [self.terms[i] for i in kept]
            self.vectors = self.vectors[kept]
            self._coarse = None
            self.rows = {k: i for i, k in enumerate(self.keys)}
            self._lexical.keep(kept)
            return len(drop)

    def _coarse_vectors(self) -> CoarseVectors:
        if self._coarse is None:
            self._coarse = CoarseVectors(self.vectors)
        return self._coarse

    def prepare(self, *, dense: bool = True) -> None:
        """Build what a search needs now rather than on the first search (``dense``: the
        dense side's too; a BM25-only index leaves it, and torch, alone)."""
        with self.lock:
            self._lexical.prepare()
            if dense and self.keys:
                self._coarse_vectors()

    # --- search -----------------------------------------------------------------------

    def _mask(self, allowed: Iterable[int] | None) -> np.ndarray | None:
        if allowed is None:
            return None
        mask = np.zeros(len(self.keys), dtype=bool)
        rows = [self.rows[k] for k in allowed if k in self.rows]
        mask[rows] = True
        return mask

    def _bm25_scores(self, query: str) -> np.ndarray:
        scores = self._lexical.scores(terms(query))
        # A document sharing no term with the query is not a lexical match at all.
        scores[scores <= 0] = -np.inf
        return scores

    def _query_vectors(self, query: str) -> np.ndarray:
        # Each sentence of the query when it has several: a request for three things is
        # three requests, and one vector for all of them sits near none. (Embedding the
        # whole query as well doubled the work for no gain in hybrid search: Seal-Tools
        # NDCG@10 0.9183 with it, 0.9180 without.)
        return self._embed(requests(query))

    def _exact(self, vectors: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Float32 cosine of the tools at ``rows`` to the query, or to the sentence of it
        nearest to each tool."""
        # One BLAS thread: a product this small loses more to threads waiting on each other
        # (on a busy machine, p95 4x worse at 4,000 tools) than it gains from a second core.
        with _blas().limit(limits=1, user_api="blas"):
            return (vectors @ self.vectors[rows].T).max(axis=0)

    def _dense_top(
        self, vectors: np.ndarray, depth: int, mask: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``depth`` rows nearest the query (of ``mask``'s rows), best first, with their
        float32 cosines."""
        count = len(self.keys) if mask is None else int(np.count_nonzero(mask))
        if not count:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        if mask is not None and count <= DENSE_SUBSET_SHARE * len(self.keys):
            rows = np.flatnonzero(mask)
        else:
            wanted = max(depth * DENSE_CANDIDATES_PER_RESULT, DENSE_MIN_CANDIDATES)
            with encoder.torch_threads(1):
                coarse = self._coarse_vectors().scores(vectors)
            if mask is not None:
                coarse[~mask] = -np.inf
            rows = _top(coarse, wanted)
        exact = self._exact(vectors, rows)
        best = _top(exact, depth)
        return rows[best], exact[best]

    def search(
        self,
        query: str,
        *,
        k: int = 10,
        method: str = "hybrid",
        allowed: Iterable[int] | None = None,
        rrf_k: int = RRF_K,
    ) -> list[Hit]:
        """The ``k`` best tools for ``query``, best first; ``allowed`` limits the search
        to those keys (a toolset)."""
        if method not in METHODS:
            raise ValueError(f"unknown retrieval method {method!r}; use one of {METHODS}")
        # The query is embedded before taking the lock: the model is the slow part.
        vectors = self._query_vectors(query) if method != "bm25" else None
        with self.lock:
            mask = self._mask(allowed)
            # Each ranking: its rows best first, and their scores.
            rankings: dict[str, tuple[np.ndarray, np.ndarray]] = {}
            depth = max(k, FUSION_DEPTH) if method == "hybrid" else k
            if method in ("bm25", "hybrid"):
                scores = self._bm25_scores(query)
                if mask is not None:
                    scores[~mask] = -np.inf
                rows = _top(scores, depth)
                rankings["bm25"] = (rows, scores[rows])
            if method in ("dense", "hybrid"):
                rankings["dense"] = self._dense_top(vectors, depth, mask)
            if method != "hybrid":
                rows, scores = rankings[method]
                return [
                    Hit(self.keys[r], float(score), {method: i + 1})
                    for i, (r, score) in enumerate(zip(rows[:k], scores[:k], strict=True))
                ]
            # Fusion over the two top lists only (at most 2 x depth rows), never all tools.
            fused: dict[int, Hit] = {}
            for name, (rows, _) in rankings.items():
                for rank, row in enumerate(rows.tolist(), start=1):
                    hit = fused.get(row)
                    if hit is None:
                        hit = fused[row] = Hit(self.keys[row], 0.0)
                    hit.score += 1.0 / (rrf_k + rank)
                    hit.ranks[name] = rank
            return sorted(fused.values(), key=lambda h: (-h.score, min(h.ranks.values())))[:k]

    # --- persistence ------------------------------------------------------------------

    def save(self, path: Path) -> None:
        """Write the index to one file, atomically (a reader sees the old or the new)."""
        with self.lock:
            path.parent.mkdir(parents=True, exist_ok=True)
            header = {
                "version": FORMAT_VERSION,
                "model": encoder.MODEL_NAME,
                "max_seq_length": encoder.MAX_SEQ_LENGTH,
                "meta": self.meta,
            }
            buffer = io.BytesIO()
            np.savez(
                buffer,
                header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8),
                keys=np.asarray(self.keys, dtype=np.int64),
                vectors=self.vectors,
                texts=np.frombuffer(json.dumps(self.texts).encode(), dtype=np.uint8),
                # Terms too: cutting 50,000 texts into terms again is most of a load's time.
                terms=np.frombuffer(json.dumps(self.terms).encode(), dtype=np.uint8),
            )
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tool-index-")
            with os.fdopen(fd, "wb") as fh:
                fh.write(buffer.getvalue())
            os.replace(tmp, path)

    @classmethod
    def load(
        cls, path: Path, *, embed: Callable[[list[str]], np.ndarray] = encoder.embed
    ) -> ToolIndex | None:
        """The index saved at ``path``, or None when there is none or it was made by
        another model or format (then it is rebuilt, never misread)."""
        try:
            with np.load(path) as data:
                header = json.loads(data["header"].tobytes())
                if (
                    header.get("version") != FORMAT_VERSION
                    or header.get("model") != encoder.MODEL_NAME
                    or header.get("max_seq_length") != encoder.MAX_SEQ_LENGTH
                ):
                    return None
                keys = data["keys"].tolist()
                vectors = data["vectors"].astype(np.float32)
                texts = json.loads(data["texts"].tobytes())
                saved_terms = json.loads(data["terms"].tobytes()) if "terms" in data else None
        except (OSError, ValueError, KeyError):
            return None
        if len(keys) != len(texts) or vectors.shape != (len(keys), encoder.DIMENSIONS):
            return None
        index = cls(embed=embed)
        index.keys, index.texts, index.vectors = keys, texts, vectors
        index.rows = {k: i for i, k in enumerate(keys)}
        index.hashes = [text_hash(t) for t in texts]
        if saved_terms is None or len(saved_terms) != len(texts):
            saved_terms = [terms(t) for t in texts]
        index.terms = saved_terms
        for row, row_terms in enumerate(saved_terms):
            index._lexical.set(row, row_terms)
        index.meta = header.get("meta") or {}
        return index
