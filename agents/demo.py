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


# --- finished demo runs, so the first screen is not empty -----------------------------

# (agent slug, input, hours ago, turns, ending). A turn is (model text, [tool calls]);
# a tool call is (tool, arguments, result or None, error or "", duration ms). The last
# element says how the run ended: ("succeeded", answer) / ("failed", error) / ("cancelled", "").
DEMO_RUNS: list[tuple] = [
    (
        "demo",
        "What is (12 + 30) * 2, and how many miles is 5 km?",
        30,
        [
            (
                "I'll compute the product and convert the distance.",
                [
                    ("calculator", {"expression": "(12 + 30) * 2"}, {"result": 84}, "", 3),
                    (
                        "unit_convert",
                        {"value": 5, "from_unit": "km", "to_unit": "mi"},
                        {"value": 3.10686, "unit": "mi"},
                        "",
                        4,
                    ),
                ],
            ),
        ],
        ("succeeded", "(12 + 30) × 2 = 84, and 5 km is about 3.107 miles."),
    ),
    (
        "demo",
        "What time is it in Paris?",
        20,
        [
            (
                "Let me look at the clock.",
                [
                    (
                        "clock",
                        {"timezone": "Europe/Paris"},
                        {"time": "2026-01-01T10:00:00+01:00"},
                        "",
                        2,
                    )
                ],
            ),
        ],
        ("succeeded", "It is 10:00 in Paris."),
    ),
    (
        "local",
        "what is 17 * 23",
        6,
        [("", [("calculator", {"expression": "17 * 23"}, {"result": 391}, "", 2)])],
        ("succeeded", "The result of the calculation is 391."),
    ),
    (
        "demo",
        "Convert 3 parsecs to kilometres.",
        12,
        [
            (
                "Converting.",
                [
                    (
                        "unit_convert",
                        {"value": 3, "from_unit": "parsec", "to_unit": "km"},
                        None,
                        "unit_convert failed: unknown unit 'parsec'",
                        2,
                    )
                ],
            ),
        ],
        ("failed", "model call failed: the script has only 1 replies; the run asked for more"),
    ),
    (
        "demo",
        "What is the square root of -1?",
        3,
        [
            (
                "Computing.",
                [
                    (
                        "calculator",
                        {"expression": "sqrt(-1)"},
                        None,
                        "calculator failed: math domain error",
                        1,
                    )
                ],
            ),
        ],
        ("failed", "no final answer within 1 model turns"),
    ),
    (
        "demo",
        "Wait ten seconds, then tell me the time.",
        1,
        [("Waiting first.", [("sleep", {"seconds": 10}, {"slept": 2.1}, "", 2100)])],
        ("cancelled", "cancelled by a user"),
    ),
]


@transaction.atomic
def demo_traces_seed() -> list:
    """Record a few finished runs of the demo agents (successes, failures, a cancelled
    one) spread over the last day and a half. Does nothing if they exist already.

    Other apps add their own demo data through their own functions, called one after
    another by ``manage.py seed_demo`` (see ``DEMO_SEEDERS`` there)."""
    from datetime import timedelta

    from django.utils import timezone

    from traces.models import Step, Trace
    from traces.rollup_services import rollup_invalidate
    from traces.services import step_record, trace_create, trace_finish, trace_start

    from .services import agent_version_record

    if Trace.objects.filter(metadata__demo_runs=True).exists():
        return []
    agents = {a.slug: a for a in Agent.objects.select_related("endpoint")}
    made = []
    for slug, text, hours_ago, turns, (status, ending) in DEMO_RUNS:
        agent = agents[slug]
        version = agent_version_record(agent=agent)
        trace = trace_create(
            name=agent.name,
            input=text,
            agent_slug=slug,
            metadata={
                "agent_id": agent.id,
                "endpoint": agent.endpoint.name,
                "strategy": agent.strategy,
                "agent_version_id": version.id,
                "agent_version": version.number,
                "demo_runs": True,
            },
        )
        trace_start(trace_id=trace.id, worker="demo")
        base = timezone.now() - timedelta(hours=hours_ago)
        clock = base

        def tick(ms: float):
            nonlocal clock
            start, clock = clock, clock + timedelta(milliseconds=ms)
            return start, clock

        model = None
        for n, (content, calls) in enumerate(turns, start=1):
            started, ended = tick(450)
            model = step_record(
                trace_id=trace.id,
                kind=Step.Kind.MODEL_CALL,
                name=agent.endpoint.model or "scripted",
                input={"messages": [{"role": "user", "content": text}] if n == 1 else []},
                output={
                    "content": content,
                    "tool_calls": [
                        {"id": f"call_{n}_{i}", "name": c[0], "arguments": c[1]}
                        for i, c in enumerate(calls)
                    ],
                },
                started_at=started,
                ended_at=ended,
                prompt_tokens=180 * n,
                completion_tokens=30,
            )
            for i, (tool, arguments, result, error, ms) in enumerate(calls):
                call = step_record(
                    trace_id=trace.id,
                    kind=Step.Kind.TOOL_CALL,
                    name=tool,
                    input=arguments,
                    parent=model,
                    tool_call_id=f"call_{n}_{i}",
                )
                started, ended = tick(ms)
                step_record(
                    trace_id=trace.id,
                    kind=Step.Kind.ERROR if error else Step.Kind.TOOL_RESULT,
                    name="tool_error" if error else tool,
                    input=arguments,
                    output=result,
                    error=error,
                    parent=call,
                    tool_call_id=f"call_{n}_{i}",
                    started_at=started,
                    ended_at=ended,
                )
        if status == "succeeded":
            started, ended = tick(400)
            step_record(
                trace_id=trace.id,
                kind=Step.Kind.FINAL,
                name="answer",
                output={"content": ending},
                parent=model,
            )
            trace_finish(trace_id=trace.id, status=status, output=ending)
        else:
            trace_finish(trace_id=trace.id, status=status, error=ending)
        # Back-date the run so the dashboard's chart spreads them over the period.
        Trace.objects.filter(pk=trace.id).update(
            created_at=base, started_at=base, ended_at=clock, heartbeat_at=clock
        )
        Step.objects.filter(trace_id=trace.id).update(created_at=base)
        rollup_invalidate(trace_ids=[trace.id])
        made.append(trace)
    return made
