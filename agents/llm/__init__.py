"""Model backends behind one interface: ``backend_for(endpoint).complete(messages, tools)``.

``BACKENDS`` maps an endpoint's kind to its backend class, one module per backend; the
backends import only ``.base``, never this registry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import ModelBackend, ModelCancelled, ModelError, ModelReply, ToolCallRequest
from .hf import HfBackend
from .local import LocalBackend
from .openai import OpenAIBackend
from .scripted import ScriptedBackend

if TYPE_CHECKING:
    from agents.models import ModelEndpoint

BACKENDS: dict[str, type] = {
    "openai": OpenAIBackend,
    "local": LocalBackend,
    "scripted": ScriptedBackend,
    "hf": HfBackend,
}


def backend_for(endpoint: ModelEndpoint) -> ModelBackend:
    try:
        cls = BACKENDS[endpoint.kind]
    except KeyError:
        raise ModelError(f"unknown endpoint kind {endpoint.kind!r}") from None
    return cls(endpoint)


__all__ = [
    "BACKENDS",
    "ModelBackend",
    "ModelCancelled",
    "ModelError",
    "ModelReply",
    "ToolCallRequest",
    "backend_for",
]
