"""JSON forms of traces and steps: what the API, the JSON websocket and the events carry."""

from __future__ import annotations

from typing import Any

from .models import Step, Trace


def step_payload(step: Step) -> dict[str, Any]:
    """The JSON form of a step, as the API and JSON websocket clients get it."""
    meta = step.metadata if isinstance(step.metadata, dict) else {}
    return {
        "id": step.id,
        "trace_id": str(step.trace_id),
        "seq": step.seq,
        "parent_seq": meta.get("parent_seq"),
        "depth": meta.get("depth"),
        "kind": step.kind,
        "name": step.name,
        "status": step.status,
        "input": step.input,
        "output": step.output,
        "error": step.error,
        "tool_call_id": step.tool_call_id,
        "span_id": step.span_id,
        "parent_span_id": step.parent_span_id,
        "attributes": meta.get("attributes", {}),
        "started_at": step.started_at.isoformat() if step.started_at else None,
        "ended_at": step.ended_at.isoformat() if step.ended_at else None,
        "duration_ms": step.duration_ms,
        "prompt_tokens": step.prompt_tokens,
        "completion_tokens": step.completion_tokens,
    }


def trace_payload(trace: Trace) -> dict[str, Any]:
    return {
        "id": str(trace.id),
        "name": trace.name,
        "agent_slug": trace.agent_slug,
        "source": trace.source,
        "status": trace.status,
        "input": trace.input,
        "output": trace.output,
        "error": trace.error,
        "otel_trace_id": trace.otel_trace_id,
        "created_at": trace.created_at.isoformat() if trace.created_at else None,
        "started_at": trace.started_at.isoformat() if trace.started_at else None,
        "ended_at": trace.ended_at.isoformat() if trace.ended_at else None,
        "duration_seconds": trace.duration_seconds,
        "step_count": trace.step_count,
        "prompt_tokens": trace.prompt_tokens,
        "completion_tokens": trace.completion_tokens,
        "model_calls": trace.model_calls,
        "tool_calls": trace.tool_calls,
        "error_count": trace.error_count,
        "cost": trace.cost,
        "price": trace.metadata.get("price") if isinstance(trace.metadata, dict) else None,
        "cancel_requested": trace.cancel_requested,
        "forked_from": str(trace.forked_from_id) if trace.forked_from_id else None,
        "fork_seq": trace.fork_seq,
    }
