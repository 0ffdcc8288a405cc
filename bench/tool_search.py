"""Benchmark: the tool index at 50,000 tools — build time, memory, query latency.

    .venv/bin/python bench/tool_search.py [--tools 50000] [--queries 300] [--embed sample|all]

The tools are the 4,076 Seal-Tools tools (``../shared/data/seal-tools``) repeated under
numbered sources until there are ``--tools`` of them: each copy a distinct name
(``getWeather`` of source 7 is ``getWeather_s7``), the description and arguments of
its original. Queries are Seal-Tools' own requests (test and dev), each distinct, so
no query embedding comes from the encoder's cache.

Dense vectors: MiniLM embeds 3-40 tool texts a second on this shared 2-core
machine (depending on its load), so embedding 50,000 takes one to several hours. ``--embed sample`` (the default)
embeds ``--sample`` real tool texts, times it, extrapolates to all tools, and fills the
index with those real vectors (tiled, with a little noise): the dense search does the
same arithmetic on a matrix of the same shape. ``--embed all`` embeds every tool.
Everything else — the BM25 index over every tool's real text, RRF, every query's
embedding — is measured as it runs.

Prints: build time (lexical, dense measured or extrapolated), memory (process RSS and
the index's arrays), the cost of one incremental update (one changed tool: its
embedding and BM25 counts, then the next search), what merging the changed tools into
the BM25 postings costs (once per 2,000 changes), save/load time and file size, and
query latency p50/p95 for bm25, dense and hybrid over all tools and within a toolset of
5,000, each with the CPU time of the searching thread beside it (on a shared machine the
wall clock includes waiting for a core). The last line is ``hybrid_p95_ms=…`` (wall).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from toolsapp.retrieval import encoder  # noqa: E402

try:
    from toolsapp.retrieval import lexical
except ImportError:  # an older checkout, measured for comparison
    lexical = None
from toolsapp.retrieval.index import IndexedTool, ToolIndex  # noqa: E402
from toolsapp.retrieval.text import requests, tool_document  # noqa: E402

sys.path.insert(0, str(REPO / "bench"))
from seal_tools_beir import DEFAULT_DATA, tool_schema  # noqa: E402


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def percentiles(values: list[float], cpu: list[float] | None = None) -> str:
    line = f"p50 {np.percentile(values, 50):7.2f} ms   p95 {np.percentile(values, 95):7.2f} ms"
    if cpu is not None:
        line += f"   (cpu p50 {np.percentile(cpu, 50):6.2f} / p95 {np.percentile(cpu, 95):6.2f})"
    return line


class Timings:
    """Wall-clock and this thread's CPU time per call, in ms. On a shared machine the
    wall clock includes waiting for a core; the CPU time is the work itself."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def __call__(self, fn, *args, **kwargs):
        wall, cpu = time.perf_counter(), time.thread_time()
        result = fn(*args, **kwargs)
        self.cpu.append((time.thread_time() - cpu) * 1000)
        self.wall.append((time.perf_counter() - wall) * 1000)
        return result

    def __str__(self) -> str:
        return percentiles(self.wall, self.cpu)


def make_tools(data: Path, count: int) -> list[IndexedTool]:
    base = [json.loads(line) for line in (data / "tool.jsonl").open(encoding="utf-8")]
    tools = []
    for i in range(count):
        tool = base[i % len(base)]
        copy = i // len(base)
        name = tool["api_name"] if copy == 0 else f"{tool['api_name']}_s{copy}"
        text = tool_document(
            name=name,
            description=tool["api_description"],
            parameters=tool_schema(tool.get("parameters")),
        )
        tools.append(IndexedTool(key=i + 1, text=text))
    return tools


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--tools", type=int, default=50_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--embed", choices=["sample", "all"], default="sample")
    parser.add_argument("--sample", type=int, default=256, help="texts embedded for real")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: its default)")
    args = parser.parse_args()

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    rng = random.Random(0)
    started_rss = rss_mb()
    tools = make_tools(args.data, args.tools)
    rows = [
        json.loads(line)
        for name in ("test_in_domain", "dev")
        for line in (args.data / f"{name}.jsonl").open()
    ]
    queries = list(dict.fromkeys(row["query"] for row in rows))
    rng.shuffle(queries)
    queries = queries[: args.queries]
    print(f"{len(tools)} tools, {len(queries)} distinct queries, load {os.getloadavg()[0]:.1f}")

    t = time.perf_counter()
    encoder.model()
    print(f"model load              {time.perf_counter() - t:8.2f} s")

    texts = [tool.text for tool in tools]
    if args.embed == "all":
        t = time.perf_counter()
        vectors = encoder.embed(texts)
        embed_s = time.perf_counter() - t
        print(f"dense embed (all)       {embed_s:8.1f} s   ({len(texts) / embed_s:.0f} texts/s)")
    else:
        sample = rng.sample(texts, args.sample)
        t = time.perf_counter()
        sample_vectors = encoder.embed(sample)
        sample_s = time.perf_counter() - t
        rate = len(sample) / sample_s
        print(
            f"dense embed (sample)    {sample_s:8.1f} s for {len(sample)} texts ({rate:.0f}/s): "
            f"all {len(texts)} ~ {len(texts) / rate:.0f} s (extrapolated)"
        )
        noise = np.random.default_rng(0).normal(0, 0.02, (len(texts), encoder.DIMENSIONS))
        vectors = sample_vectors[np.arange(len(texts)) % len(sample)] + noise.astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    by_text = dict(zip(texts, vectors, strict=True))

    def embed(batch: list[str]) -> np.ndarray:
        # Tool texts from the table above; anything else (queries, edits) for real.
        if all(text in by_text for text in batch):  # noqa: B023 - by_text grows on purpose
            return np.asarray([by_text[text] for text in batch], dtype=np.float32)
        return encoder.embed(batch)

    index = ToolIndex(embed=embed)
    before = rss_mb()
    t = time.perf_counter()
    index.upsert(tools)
    upsert_s = time.perf_counter() - t
    t = time.perf_counter()
    index.prepare()
    lexical_s = time.perf_counter() - t
    print(f"index rows + terms      {upsert_s:8.2f} s")
    print(f"bm25 build + bf16 copy  {lexical_s:8.2f} s")
    arrays_mb = index.vectors.nbytes / 2**20
    print(
        f"memory                  RSS {rss_mb():.0f} MB (index adds {rss_mb() - before:.0f} MB; "
        f"dense matrix {arrays_mb:.0f} MB; process began at {started_rss:.0f} MB)"
    )

    changed = IndexedTool(key=tools[0].key, text=tools[0].text + "\nalso reports tide times")
    t = time.perf_counter()
    index.upsert([changed])
    one_s = time.perf_counter() - t
    t = time.perf_counter()
    index.search("tide times", k=10, method="bm25")
    next_s = time.perf_counter() - t
    print(
        f"update one tool         {one_s * 1000:8.1f} ms (embed, bm25 counts) + "
        f"{next_s * 1000:.1f} ms (the next bm25 search, all of it)"
    )
    if lexical is not None:  # absent before the incremental BM25 (comparison runs)
        t = time.perf_counter()
        index._lexical.rebuild()
        print(
            f"bm25 postings rebuild   {time.perf_counter() - t:8.2f} s "
            f"(after {lexical.MAX_FRESH} changed tools; not per change)"
        )

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tool_index.npz"
        t = time.perf_counter()
        index.save(path)
        save_s = time.perf_counter() - t
        t = time.perf_counter()
        loaded = ToolIndex.load(path, embed=embed)
        loaded.prepare()
        load_s = time.perf_counter() - t
        print(
            f"save / load+prepare     {save_s:8.2f} s / {load_s:.2f} s "
            f"({path.stat().st_size / 2**20:.0f} MB file)"
        )

    for query in queries[:5]:  # warm-up: first calls allocate
        index.search(query, k=10, method="hybrid")
    toolset = rng.sample([tool.key for tool in tools], 5000)
    results = {}
    for label, allowed in (("all tools", None), ("toolset of 5000", toolset)):
        for method in ("bm25", "dense", "hybrid"):
            timings = Timings()
            for query in queries:
                # A fresh query text each time: never an encoder cache hit.
                text = f"{query} ({method} {label})"
                timings(index.search, text, k=10, method=method, allowed=allowed)
            results[(label, method)] = timings.wall
            print(f"query {method:6} {label:16} {timings}")
    encode = Timings()
    for query in queries:
        encode(encoder.embed, [f"{query} (encode only)"])
    print(f"query embedding alone          {encode}")
    # What the hybrid search embeds: the query and, for a request of several sentences,
    # each sentence too.
    encode = Timings()
    for query in queries:
        text = f"{query} (encode parts)"
        parts = requests(text)
        encode(encoder.embed, [text, *parts] if len(parts) > 1 else [text])
    print(f"query + sentences embedding    {encode}")
    # The index's own share: the same searches with each query's vectors already made.
    prepared = [f"{query} (prepared)" for query in queries]
    for text in prepared:
        for part in {text, *requests(text)}:
            by_text[part] = encoder.embed([part])[0]
    for method in ("bm25", "dense", "hybrid"):
        timings = Timings()
        for text in prepared:
            timings(index.search, text, k=10, method=method)
        print(f"query {method:6} no embedding     {timings}")
    print(f"load average at the end {os.getloadavg()[0]:.1f} (2 cores)")
    print(f"hybrid_p95_ms={np.percentile(results[('all tools', 'hybrid')], 95):.1f}")


if __name__ == "__main__":
    main()
