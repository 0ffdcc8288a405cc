"""``manage.py tool_retrieval_eval`` on BEIR files (a Seal-Tools sample)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

SEAL = Path(__file__).parent / "data" / "seal_tools"
KEYS = ["method", "recall@1", "recall@5", "recall@10", "ndcg@10", "p50_ms", "p95_ms"]


def run_eval(*extra: str, corpus: Path = SEAL / "corpus.jsonl", qrels: Path = SEAL / "qrels.tsv"):
    out = io.StringIO()
    call_command(
        "tool_retrieval_eval",
        "--corpus",
        str(corpus),
        "--queries",
        str(SEAL / "queries.jsonl"),
        "--qrels",
        str(qrels),
        *extra,
        stdout=out,
    )
    return out.getvalue().splitlines()


def test_it_prints_one_json_line_per_method_the_last_one_last():
    lines = run_eval("--method", "bm25,dense,hybrid", "--k", "1,5,10")
    results = [json.loads(line) for line in lines[-3:]]
    assert [r["method"] for r in results] == ["bm25", "dense", "hybrid"]
    for result in results:
        assert list(result) == KEYS
        assert 0 <= result["recall@1"] <= result["recall@5"] <= result["recall@10"] <= 1
        # 20 queries over 88 tools: every method finds most of what each query calls.
        assert result["recall@10"] > 0.8 and result["ndcg@10"] > 0.6
        assert result["p95_ms"] >= result["p50_ms"] >= 0


def test_the_default_is_hybrid_with_recall_at_1_5_10():
    assert list(json.loads(run_eval()[-1])) == KEYS


@pytest.mark.parametrize(
    ("qrels_text", "message"),
    [
        ("query\tdoc\tscore\n", "header must be"),
        ("query-id\tcorpus-id\tscore\nq1\tdoc\n", "qrels.tsv:2: expected 3"),
        ("query-id\tcorpus-id\tscore\nnobody\tnothing\t1\n", "no relevant pair"),
    ],
)
def test_malformed_qrels_are_refused_with_the_file_and_line(tmp_path, qrels_text, message):
    qrels = tmp_path / "qrels.tsv"
    qrels.write_text(qrels_text)
    with pytest.raises(CommandError, match=message):
        run_eval("--method", "bm25", qrels=qrels)


def test_a_missing_or_broken_corpus_is_named(tmp_path):
    with pytest.raises(CommandError, match="nowhere.jsonl: cannot read"):
        run_eval(corpus=tmp_path / "nowhere.jsonl")
    broken = tmp_path / "corpus.jsonl"
    broken.write_text('{"_id": "a", "title": "a", "text": "x"}\n{"title": "b"}\n')
    with pytest.raises(CommandError, match=r"corpus.jsonl:2: missing '_id'"):
        run_eval(corpus=broken)


def test_unknown_methods_and_cut_offs_are_refused():
    with pytest.raises(CommandError, match="unknown method splade"):
        run_eval("--method", "splade")
    with pytest.raises(CommandError, match="--k must be"):
        run_eval("--k", "1,five")
