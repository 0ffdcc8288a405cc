"""The ``hf`` backend: a model artifact served in-process with transformers (CPU or CUDA).

The artifact's chat template renders the conversation; when the template has no tool
support, tools and calls are written the way ``agents.training.chat_format`` says and
``<tool_call>`` blocks are read back from the reply. Loaded models are kept per process
(keyed by the artifact's content hash)."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

from .base import CallLimits, ModelError, ModelReply, ToolCallRequest, deadline_from

_CACHE: dict[str, tuple[Any, Any]] = {}
_LOCK = threading.Lock()


def _load(path: str, key: str, device: str):
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(path)
            model = AutoModelForCausalLM.from_pretrained(
                path, dtype=torch.float32 if device == "cpu" else torch.bfloat16
            )
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot load the model artifact at {path}: {exc}") from exc
        model.to(device).eval()
        _CACHE.clear()  # one model per process at a time keeps memory bounded
        _CACHE[key] = (tokenizer, model)
        return tokenizer, model


def _stopping(limits: CallLimits):
    """Transformers stopping criteria, checked after every generated token, that end
    generation once the call is cancelled or past its deadline."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class Stop(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            return torch.full(
                (input_ids.shape[0],), limits.passed(), dtype=torch.bool, device=input_ids.device
            )

    return StoppingCriteriaList([Stop()])


class HfBackend:
    def __init__(self, endpoint) -> None:
        config = endpoint.config or {}
        artifact = getattr(endpoint, "artifact", None)
        if artifact is None and config.get("path"):
            # A temporary model (a merge-search candidate) served from its folder.
            artifact = SimpleNamespace(name=endpoint.name, path=config["path"], sha256="")
        if artifact is None:
            raise ModelError(f"hf endpoint {endpoint.name!r} names no model artifact")
        self.artifact = artifact
        self.max_new_tokens = int(config.get("max_new_tokens", 128))
        self.temperature = float(config.get("temperature", 0.0))
        self.deadline = deadline_from(config)
        import torch

        self.device = config.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")

    def complete(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        *,
        cancel: threading.Event | None = None,
    ) -> ModelReply:
        limits = CallLimits(cancel, self.deadline, f"the model {self.artifact.name!r}")
        limits.check()
        import torch

        from agents.training.chat_format import (
            flatten_messages,
            parse_reply,
            template_supports_tools,
        )

        tokenizer, model = _load(
            self.artifact.path, self.artifact.sha256 or self.artifact.path, self.device
        )
        if template_supports_tools(tokenizer.chat_template):
            prompt = tokenizer.apply_chat_template(
                messages, tools=tools or None, add_generation_prompt=True, tokenize=False
            )
        elif tokenizer.chat_template:
            prompt = tokenizer.apply_chat_template(
                flatten_messages(messages, tools), add_generation_prompt=True, tokenize=False
            )
        else:
            # A base model with no chat template: a plain transcript.
            lines = [f"{m['role']}: {m['content']}" for m in flatten_messages(messages, tools)]
            prompt = "\n".join([*lines, "assistant:"])
        inputs = tokenizer(prompt, return_tensors="pt").to(self.device)
        with torch.no_grad():
            generated = model.generate(
                **inputs,
                max_new_tokens=self.max_new_tokens,
                do_sample=self.temperature > 0,
                temperature=self.temperature if self.temperature > 0 else None,
                top_p=None,
                top_k=None,
                pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
                stopping_criteria=_stopping(limits),
            )
        limits.check()  # generation stopped early because of a cancel or the deadline
        new_tokens = generated[0, inputs["input_ids"].shape[1] :]
        text = tokenizer.decode(new_tokens, skip_special_tokens=True)
        content, calls = parse_reply(text)
        return ModelReply(
            content=content,
            tool_calls=[
                ToolCallRequest(id=f"call_{i}", name=n, arguments=a)
                for i, (n, a) in enumerate(calls)
            ],
            prompt_tokens=int(inputs["input_ids"].shape[1]),
            completion_tokens=int(new_tokens.shape[0]),
            model=self.artifact.name,
            finish_reason="tool_calls" if calls else "stop",
        )
