"""Convert the Seal-Tools data set to BEIR layout for ``manage.py tool_retrieval_eval``.

    .venv/bin/python bench/seal_tools_beir.py --out var/seal-tools-beir
    .venv/bin/python bench/seal_tools_beir.py --out DIR --split dev --queries 40 --distractors 120

Seal-Tools (Wu et al. 2024, Apache-2.0; ``../shared/data/seal-tools/`` beside the
checkout, read-only) has ``tool.jsonl`` (4,076 tools: ``api_name``, ``api_description``,
``parameters`` {name: {type, description}}) and query files (``test_in_domain.jsonl``,
``dev.jsonl``: ``query`` and the ``calling`` list of APIs that answer it).

Written to ``--out``:
- ``corpus.jsonl``: one line per tool, ``{"_id": api_name, "title": api_name, "text":
  description, then one "argument: description" line per parameter}`` — the same text
  the live index makes of a ``Tool`` (``toolsapp.retrieval.text``);
- ``queries.jsonl``: ``{"_id": id, "text": query}``;
- ``qrels.tsv``: header ``query-id corpus-id score``, one row (score 1) per API a query
  calls (a query that calls three tools has three relevant documents).

``--queries N`` keeps a seeded sample of N queries, and ``--distractors M`` keeps only
the tools those queries call plus M others: a small fixture for tests.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from toolsapp.retrieval.text import parameters_text  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "data" / "seal-tools"
_TYPES = {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}


def tool_schema(parameters: dict) -> dict:
    """Seal-Tools' ``{name: {type, description}}`` as a JSON Schema object."""
    return {
        "type": "object",
        "properties": {
            name: {
                "type": _TYPES.get(str(spec.get("type")), "string"),
                "description": spec.get("description", ""),
            }
            for name, spec in (parameters or {}).items()
        },
    }


def convert(
    data: Path, out: Path, *, split: str, queries: int | None, distractors: int | None, seed: int
) -> dict:
    tools = [json.loads(line) for line in (data / "tool.jsonl").open(encoding="utf-8")]
    rows = [json.loads(line) for line in (data / f"{split}.jsonl").open(encoding="utf-8")]
    rng = random.Random(seed)
    if queries is not None:
        rows = rng.sample(rows, min(queries, len(rows)))
    relevant = {row["id"]: sorted({call["api"] for call in row["calling"]}) for row in rows}
    if distractors is not None:
        needed = {api for apis in relevant.values() for api in apis}
        others = [t for t in tools if t["api_name"] not in needed]
        keep = needed | {t["api_name"] for t in rng.sample(others, min(distractors, len(others)))}
        tools = [t for t in tools if t["api_name"] in keep]
    out.mkdir(parents=True, exist_ok=True)
    with (out / "corpus.jsonl").open("w", encoding="utf-8") as fh:
        for tool in tools:
            arguments = parameters_text(tool_schema(tool.get("parameters")))
            text = tool["api_description"].strip() + ("\n" + arguments if arguments else "")
            doc = {"_id": tool["api_name"], "title": tool["api_name"], "text": text}
            fh.write(json.dumps(doc, ensure_ascii=False) + "\n")
    with (out / "queries.jsonl").open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps({"_id": row["id"], "text": row["query"]}, ensure_ascii=False))
            fh.write("\n")
    with (out / "qrels.tsv").open("w", encoding="utf-8") as fh:
        fh.write("query-id\tcorpus-id\tscore\n")
        for query_id, apis in relevant.items():
            for api in apis:
                fh.write(f"{query_id}\t{api}\t1\n")
    return {"tools": len(tools), "queries": len(rows), "qrels": sum(map(len, relevant.values()))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--split", default="test_in_domain", choices=["test_in_domain", "dev"])
    parser.add_argument("--queries", type=int, default=None, help="sample this many queries")
    parser.add_argument("--distractors", type=int, default=None, help="keep this many other tools")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    counts = convert(
        args.data,
        args.out,
        split=args.split,
        queries=args.queries,
        distractors=args.distractors,
        seed=args.seed,
    )
    print(json.dumps({"out": str(args.out), **counts}))


if __name__ == "__main__":
    main()
