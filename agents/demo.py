"""Demo data: the built-in tools, a scripted demo agent and the local-model agent."""

from __future__ import annotations

from django.db import transaction

from toolsapp.models import Toolset
from toolsapp.services import builtin_tools_sync

from .models import Agent, ModelEndpoint

DEMO_SCRIPT = [
    {
        "content": "I'll compute the product and convert the distance at the same time.",
        "tool_calls": [
            {"name": "calculator", "arguments": {"expression": "(12 + 30) * 2"}},
            {"name": "unit_convert", "arguments": {"value": 5, "from_unit": "km", "to_unit": "mi"}},
        ],
        "delay_ms": 400,
        "prompt_tokens": 180,
        "completion_tokens": 42,
    },
    {
        "content": "Now the time in Paris.",
        "tool_calls": [{"name": "clock", "arguments": {"tz": 5}}],
        "delay_ms": 400,
        "prompt_tokens": 260,
        "completion_tokens": 18,
    },
    {
        "content": "The argument was wrong; retrying with the right name.",
        "tool_calls": [{"name": "clock", "arguments": {"timezone": "Europe/Paris"}}],
        "delay_ms": 400,
        "prompt_tokens": 320,
        "completion_tokens": 20,
    },
    {
        "content": "(12 + 30) × 2 = 84, 5 km is about 3.107 miles, and I looked up the time in Paris.",
        "delay_ms": 300,
        "prompt_tokens": 380,
        "completion_tokens": 30,
    },
]


@transaction.atomic
def demo_seed() -> dict[str, Agent]:
    """Create or refresh the demo endpoints and agents (idempotent)."""
    builtin_tools_sync()
    toolset = Toolset.objects.get(slug="builtin")
    scripted, _ = ModelEndpoint.objects.update_or_create(
        name="demo-script",
        defaults={"kind": ModelEndpoint.Kind.SCRIPTED, "config": {"script": DEMO_SCRIPT}},
    )
    local, _ = ModelEndpoint.objects.update_or_create(
        name="local-smollm2",
        defaults={
            "kind": ModelEndpoint.Kind.LOCAL,
            "model": "SmolLM2-135M-Instruct",
            # A 135M model left to choose never calls a tool: its first turn calls one,
            # the turn after the result answers (see agents.llm.local).
            "config": {"max_tokens": 96, "n_ctx": 2048, "tool_choice": "once"},
        },
    )
    demo, _ = Agent.objects.update_or_create(
        slug="demo",
        defaults={
            "name": "Demo agent (scripted)",
            "description": "Replays a recorded model: parallel tool calls, a schema error it recovers from, an answer.",
            "endpoint": scripted,
            "toolset": toolset,
            "system_prompt": "You are a helpful assistant. Use the tools.",
            "max_steps": 8,
        },
    )
    smol, _ = Agent.objects.update_or_create(
        slug="local",
        defaults={
            "name": "Local SmolLM2 agent",
            "description": "The embedded SmolLM2-135M model through llama.cpp, with the built-in tools.",
            "endpoint": local,
            "toolset": toolset,
            "system_prompt": "You are a concise assistant.",
            "max_steps": 3,
        },
    )
    return {"demo": demo, "local": smol}
