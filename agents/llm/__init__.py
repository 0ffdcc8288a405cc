"""Model backends behind one interface: ``backend_for(endpoint).complete(messages, tools)``."""

from .base import ModelBackend, ModelError, ModelReply, ToolCallRequest, backend_for

__all__ = ["ModelBackend", "ModelError", "ModelReply", "ToolCallRequest", "backend_for"]
