"""``manage.py tool_retrieval_eval``: retrieval quality of the tool index on BEIR files."""

import json
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from toolsapp.retrieval.evaluation import EvalInputError, beir_load, evaluate, index_build
from toolsapp.retrieval.index import METHODS


def _ks(text: str) -> list[int]:
    try:
        ks = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError as exc:
        raise CommandError(f"--k must be comma-separated whole numbers, not {text!r}") from exc
    if not ks or ks[0] < 1:
        raise CommandError("--k needs at least one cut-off, each 1 or more")
    return ks


class Command(BaseCommand):
    help = (
        "Index a BEIR-layout corpus as tools in a throw-away index and print Recall@K, "
        "NDCG@10 and query latency p50/p95; the last line(s): one JSON object per method."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--corpus", required=True, type=Path, help="corpus.jsonl")
        parser.add_argument("--queries", required=True, type=Path, help="queries.jsonl")
        parser.add_argument("--qrels", required=True, type=Path, help="qrels.tsv")
        parser.add_argument(
            "--method",
            default="hybrid",
            help=f"one of {', '.join(METHODS)}, or several comma-separated (default hybrid)",
        )
        parser.add_argument("--k", default="1,5,10", help="Recall cut-offs (default 1,5,10)")
        parser.add_argument("--rrf-k", type=int, default=None, help="RRF constant (default 60)")

    def handle(self, *args, **options) -> None:
        methods = [m.strip() for m in options["method"].split(",") if m.strip()]
        unknown = [m for m in methods if m not in METHODS]
        if not methods or unknown:
            raise CommandError(
                f"unknown method {', '.join(unknown) or '(none)'}; use {', '.join(METHODS)}"
            )
        ks = _ks(options["k"])
        try:
            data = beir_load(
                corpus=options["corpus"], queries=options["queries"], qrels=options["qrels"]
            )
        except EvalInputError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"{len(data.doc_ids)} tools, {len(data.qrels)} judged queries"
            + (
                f" ({data.skipped_qrels} qrels rows name no loaded query/tool)"
                if data.skipped_qrels
                else ""
            )
        )
        started = time.perf_counter()
        index = index_build(data, dense=any(m != "bm25" for m in methods))
        self.stdout.write(f"indexed in {time.perf_counter() - started:.1f} s")
        results = [evaluate(index, data, method=m, ks=ks, rrf_k=options["rrf_k"]) for m in methods]
        header = ["method", *[f"R@{k}" for k in ks], "nDCG@10", "p50 ms", "p95 ms"]
        self.stdout.write("  ".join(f"{h:>8}" for h in header))
        for r in results:
            cells = [
                r["method"],
                *[r[f"recall@{k}"] for k in ks],
                r["ndcg@10"],
                r["p50_ms"],
                r["p95_ms"],
            ]
            self.stdout.write("  ".join(f"{c:>8}" for c in cells))
        for r in results:
            self.stdout.write(json.dumps(r))
