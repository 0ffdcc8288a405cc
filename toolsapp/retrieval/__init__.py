"""Retrieval over tools: a BM25 + MiniLM index fused by reciprocal-rank fusion.

- ``text``: what of a tool is indexed, and how text becomes terms;
- ``encoder``: the offline sentence-embedding model, loaded once per process;
- ``index``: the in-memory ``ToolIndex`` (search, incremental updates, save/load);
- ``store``: the process's index of the ``Tool`` table, kept in step through the
  ``ToolIndexChange`` log and persisted under ``var/``;
- ``search``: the built-in ``tool_search`` tool offered to agents with large toolsets;
- ``evaluation``: Recall@K / NDCG@10 on BEIR-layout files.
"""
