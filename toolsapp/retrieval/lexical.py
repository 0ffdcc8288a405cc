"""BM25 that follows each change to the documents, instead of a rebuild after each.

The scores are Lucene's BM25 as ``bm25s`` computes them (its default, which this index
used before): for each query term, ``idf * tf / (tf + k1 * (1 - b + b * |d| / avgdl))``
with ``idf = ln(1 + (N - df + 0.5) / (df + 0.5))``, a term repeated in the query counted
each time, and an empty document counted as the one empty term ``""``. ``bm25s`` bakes
idf and the mean length into its matrix, so one changed tool meant rebuilding all of it
(1.2 s at 50,000 tools). Here the matrix holds raw term counts and the statistics are
kept as numbers (document frequency per term, length per document); scores are computed
at query time from the query terms' postings only. A changed document updates those
numbers at once and its postings go into a small side list of "fresh" documents, scored
the same way; when that list grows past ``MAX_FRESH`` documents the postings are rebuilt
in one vectorised pass.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

K1 = 1.5
B = 0.75
# Fresh documents scored from the side list before the postings are rebuilt: a rebuild
# costs about as much as scoring this many documents a few hundred times.
MAX_FRESH = 2_000


def _grown(array: np.ndarray, size: int) -> np.ndarray:
    """``array`` in a buffer of at least ``size`` (doubling), zeros after its items."""
    grown = np.zeros(max(size, 2 * len(array), 16), dtype=array.dtype)
    grown[: len(array)] = array
    return grown


def _postings(
    docs: list[tuple[np.ndarray, np.ndarray]], rows: np.ndarray, vocab_size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Column-major postings of ``docs`` (term ids and counts each): ``indptr`` by term,
    the row of each posting (ascending within a term) and its count."""
    if not docs:
        empty = np.zeros(0, dtype=np.int64)
        return np.zeros(vocab_size + 1, dtype=np.int64), empty, np.zeros(0, dtype=np.float32)
    sizes = np.fromiter((len(ids) for ids, _ in docs), dtype=np.int64, count=len(docs))
    ids = np.concatenate([ids for ids, _ in docs])
    counts = np.concatenate([c for _, c in docs])
    order = np.argsort(ids, kind="stable")  # stable: rows stay ascending within a term
    indptr = np.zeros(vocab_size + 1, dtype=np.int64)
    np.cumsum(np.bincount(ids, minlength=vocab_size), out=indptr[1:])
    return indptr, np.repeat(rows, sizes)[order], counts[order]


class LexicalIndex:
    """BM25 over rows 0..n-1, each a list of terms. Not thread-safe: ``ToolIndex`` locks."""

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {}
        self._df = np.zeros(0, dtype=np.int64)
        self._docs: list[tuple[np.ndarray, np.ndarray]] = []
        self._length_buffer = np.zeros(0, dtype=np.float64)  # grows by doubling
        self._total_length = 0.0
        # Postings of the rows below ``_base_rows`` as they were at the last rebuild; rows
        # changed since (and rows added after it) are ``_fresh``.
        self._base_rows = 0
        self._indptr = np.zeros(1, dtype=np.int64)
        self._indices = np.zeros(0, dtype=np.int64)
        self._tf = np.zeros(0, dtype=np.float32)
        self._stale = np.zeros(0, dtype=bool)
        self._fresh: set[int] = set()
        self._fresh_postings = None

    def __len__(self) -> int:
        return len(self._docs)

    @property
    def _lengths(self) -> np.ndarray:
        return self._length_buffer[: len(self._docs)]

    def _doc(self, terms: list[str]) -> tuple[np.ndarray, np.ndarray]:
        vocab = self.vocab
        counts = Counter(terms or [""])
        ids = []
        for term in counts:
            term_id = vocab.get(term)
            if term_id is None:
                term_id = vocab[term] = len(vocab)
            ids.append(term_id)
        if len(vocab) > len(self._df):
            self._df = _grown(self._df, len(vocab))
        return np.array(ids, dtype=np.int64), np.array(list(counts.values()), dtype=np.float32)

    # --- changes ----------------------------------------------------------------------

    def set(self, row: int, terms: list[str]) -> None:
        """Give ``row`` these terms; ``row == len(self)`` appends a document."""
        if row > len(self._docs):
            raise IndexError(row)
        doc = self._doc(terms)
        length = float(max(len(terms), 1))
        if row == len(self._docs):
            if row == len(self._length_buffer):
                self._length_buffer = _grown(self._length_buffer, row + 1)
            self._docs.append(doc)
            self._length_buffer[row] = length
        else:
            self._df[self._docs[row][0]] -= 1
            self._total_length -= self._lengths[row]
            self._docs[row] = doc
            self._lengths[row] = length
        self._df[doc[0]] += 1
        self._total_length += length
        self._mark_fresh(row)

    def _mark_fresh(self, row: int) -> None:
        if row < self._base_rows:
            self._stale[row] = True
        self._fresh.add(row)
        self._fresh_postings = None

    def keep(self, kept: np.ndarray) -> None:
        """Keep only the rows ``kept`` (ascending), renumbered 0..len(kept)-1."""
        gone = np.ones(len(self._docs), dtype=bool)
        gone[kept] = False
        for row in np.flatnonzero(gone):
            self._df[self._docs[row][0]] -= 1
        self._length_buffer = self._lengths[kept]
        self._docs = [self._docs[i] for i in kept]
        self._total_length = float(self._lengths.sum())
        # Renumber the postings instead of rebuilding them: rows keep their order.
        new_row = np.full(len(gone), -1, dtype=np.int64)
        new_row[kept] = np.arange(len(kept))
        base_new = new_row[: self._base_rows]
        term_of = np.repeat(np.arange(len(self._indptr) - 1), np.diff(self._indptr))
        renumbered = base_new[self._indices]
        alive = renumbered >= 0
        self._indices, self._tf = renumbered[alive], self._tf[alive]
        self._indptr = np.zeros_like(self._indptr)
        np.cumsum(
            np.bincount(term_of[alive], minlength=len(self._indptr) - 1), out=self._indptr[1:]
        )
        self._stale = self._stale[base_new >= 0]
        self._base_rows = len(self._stale)
        self._fresh = {int(new_row[r]) for r in self._fresh if new_row[r] >= 0}
        self._fresh_postings = None

    def prepare(self) -> None:
        """Ready for scoring: the postings rebuilt if the fresh list has grown too long."""
        if len(self._fresh) > MAX_FRESH:
            self.rebuild()
        if len(self._df) + 1 > len(self._indptr):
            # Terms new since the rebuild have no base postings: their columns are empty.
            pad = np.full(len(self._df) + 1 - len(self._indptr), self._indptr[-1])
            self._indptr = np.concatenate([self._indptr, pad])
        if self._fresh and self._fresh_postings is None:
            rows = np.fromiter(sorted(self._fresh), dtype=np.int64, count=len(self._fresh))
            self._fresh_postings = _postings([self._docs[r] for r in rows], rows, len(self._df))

    def rebuild(self) -> None:
        """Postings of every row afresh (vectorised; the fresh list empties)."""
        self._indptr, self._indices, self._tf = _postings(
            self._docs, np.arange(len(self._docs)), len(self._df)
        )
        self._base_rows = len(self._docs)
        self._stale = np.zeros(self._base_rows, dtype=bool)
        self._fresh = set()
        self._fresh_postings = None

    # --- scores -----------------------------------------------------------------------

    def scores(self, query_terms: list[str]) -> np.ndarray:
        """BM25 score of every row for these terms (0 where a row has none of them)."""
        n = len(self._docs)
        scores = np.zeros(n, dtype=np.float32)
        ids = [self.vocab[t] for t in query_terms if t in self.vocab]
        if not ids or not n:
            return scores
        self.prepare()
        norm = K1 * (1 - B + B * self._lengths / (self._total_length / n))
        for term in ids:
            df = self._df[term]
            idf = np.log(1 + (n - df + 0.5) / (df + 0.5))
            start, end = self._indptr[term], self._indptr[term + 1]
            rows, tf = self._indices[start:end], self._tf[start:end]
            if self._fresh:
                current = ~self._stale[rows]
                rows, tf = rows[current], tf[current]
            scores[rows] += (idf * tf / (tf + norm[rows])).astype(np.float32)
            if self._fresh_postings is not None:
                indptr, indices, counts = self._fresh_postings
                start, end = indptr[term], indptr[term + 1]
                rows, tf = indices[start:end], counts[start:end]
                scores[rows] += (idf * tf / (tf + norm[rows])).astype(np.float32)
        return scores
