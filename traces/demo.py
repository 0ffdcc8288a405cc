"""Demo annotation data: finished demo traces, and a queue two demo annotators have
labelled (some agreeing, some not, a few corrected calls), so a new user can open the
queue, see the agreement and export all three formats at once.

Traces are written through the traces services, shaped as our runner writes them.
Tool schemas are copied here (as a run records them) since traces imports no toolsapp.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction

from .annotation_models import AnnotationQueue
from .annotation_services import annotation_save, queue_create, queue_next
from .models import Step, Trace
from .services import step_record, trace_create, trace_finish, trace_start
from .taxonomy import error_categories_seed

DEMO_QUEUE = "Demo: label the demo agent's runs"
DEMO_ANNOTATORS = ("demo-ana", "demo-ben")
SYSTEM = "You are a helpful assistant. Use the tools."

SCHEMAS: dict[str, dict[str, Any]] = {
    "calculator": {
        "type": "object",
        "properties": {"expression": {"type": "string", "minLength": 1, "maxLength": 500}},
        "required": ["expression"],
        "additionalProperties": False,
    },
    "clock": {
        "type": "object",
        "properties": {"timezone": {"type": "string", "default": "UTC"}},
        "additionalProperties": False,
    },
    "unit_convert": {
        "type": "object",
        "properties": {
            "value": {"type": "number"},
            "from_unit": {"type": "string"},
            "to_unit": {"type": "string"},
        },
        "required": ["value", "from_unit", "to_unit"],
        "additionalProperties": False,
    },
}

# Each run: the user's input and the model's turns; a turn's calls are
# (tool, arguments, result or None, error or "").
RUNS: list[dict[str, Any]] = [
    {
        "input": "What is (12 + 30) * 2?",
        "turns": [
            (
                "Let me compute that.",
                [("calculator", {"expression": "(12 + 30) * 2"}, {"result": 84}, "")],
            ),
            ("(12 + 30) * 2 = 84.", []),
        ],
    },
    {
        "input": "What time is it in Paris?",
        "turns": [
            (
                "Checking the clock.",
                [
                    (
                        "clock",
                        {"tz": 5},
                        None,
                        "arguments break the tool's schema: (the arguments object): Additional properties are not allowed ('tz' was unexpected)",
                    )
                ],
            ),
            (
                "Retrying with the right argument.",
                [
                    (
                        "clock",
                        {"timezone": "Europe/Paris"},
                        {"time": "2026-12-01T15:04:00+01:00"},
                        "",
                    )
                ],
            ),
            ("It is 15:04 in Paris.", []),
        ],
    },
    {
        "input": "Convert 5 km to miles.",
        "turns": [
            (
                "I'll calculate it.",
                [("calculator", {"expression": "5 * 0.62"}, {"result": 3.1}, "")],
            ),
            ("5 km is 3.1 miles.", []),
        ],
    },
    {
        "input": "How many pounds is 10 kg?",
        "turns": [
            (
                "Converting.",
                [
                    (
                        "unit_convert",
                        {"value": 10, "from_unit": "kg", "to_unit": "lb"},
                        {"value": 22.046},
                        "",
                    )
                ],
            ),
            ("10 kg is about 22.05 lb.", []),
        ],
    },
    {
        "input": "What is 2 to the power of 10?",
        "turns": [
            ("Computing.", [("calculator", {"expression": "2 ** 10"}, {"result": 1024}, "")]),
            ("2 to the power of 10 is 1000.", []),
        ],
    },
]

# What each demo annotator says, by (run index, step kind, turn) → (verdict, category,
# corrected call). Unlisted steps are "good".
JUDGEMENTS: dict[str, dict[tuple[int, int], tuple]] = {
    "demo-ana": {
        (1, 2): (
            "bad",
            "wrong-arguments",
            {"name": "clock", "arguments": {"timezone": "Europe/Paris"}},
        ),
        (1, 3): ("bad", "tool-failure", None),
        (2, 2): (
            "bad",
            "wrong-tool",
            {"name": "unit_convert", "arguments": {"value": 5, "from_unit": "km", "to_unit": "mi"}},
        ),
        (4, 5): ("bad", "bad-final-answer", None),
    },
    "demo-ben": {
        (1, 2): (
            "bad",
            "wrong-arguments",
            {"name": "clock", "arguments": {"timezone": "Europe/Paris"}},
        ),
        (1, 3): ("neutral", None, None),
        (2, 1): ("neutral", None, None),
        (2, 2): (
            "bad",
            "wrong-tool",
            {"name": "unit_convert", "arguments": {"value": 5, "from_unit": "km", "to_unit": "mi"}},
        ),
        (4, 5): ("bad", "bad-final-answer", None),
        (3, 2): ("neutral", None, None),
    },
}


def demo_run_record(*, input: str, turns: list, agent_slug: str = "demo") -> Trace:
    """Write one finished run, step by step, the way the function-calling loop does."""
    trace = trace_create(name="Demo agent (scripted)", input=input, agent_slug=agent_slug)
    trace_start(trace_id=trace.id, worker="demo-data")
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": input},
    ]
    sent, previous, answer = 0, None, ""
    for turn, (content, calls) in enumerate(turns, start=1):
        ids = [f"call_{turn}_{i}" for i in range(len(calls))]
        model = step_record(
            trace_id=trace.id,
            kind=Step.Kind.MODEL_CALL,
            name="scripted",
            input={
                "messages": messages[sent:],
                "earlier_messages": sent,
                "earlier_from_step": previous,
                "tools": sorted(SCHEMAS),
            },
            output={
                "content": content,
                "tool_calls": [
                    {"id": i, "name": n, "arguments": json.dumps(a)}
                    for i, (n, a, _r, _e) in zip(ids, calls, strict=True)
                ],
                "finish_reason": "tool_calls" if calls else "stop",
                "model": "scripted",
            },
            prompt_tokens=120 + 40 * turn,
            completion_tokens=20,
        )
        sent, previous = len(messages), model.seq
        messages.append(
            {
                "role": "assistant",
                "content": content,
                **(
                    {
                        "tool_calls": [
                            {
                                "id": i,
                                "type": "function",
                                "function": {"name": n, "arguments": json.dumps(a)},
                            }
                            for i, (n, a, _r, _e) in zip(ids, calls, strict=True)
                        ]
                    }
                    if calls
                    else {}
                ),
            }
        )
        if not calls:
            answer = content
            step_record(
                trace_id=trace.id,
                kind=Step.Kind.FINAL,
                name="answer",
                output={"content": content},
                parent=model,
            )
            break
        for call_id, (name, arguments, result, error) in zip(ids, calls, strict=True):
            meta = {"schema": SCHEMAS[name]}
            call = step_record(
                trace_id=trace.id,
                kind=Step.Kind.TOOL_CALL,
                name=name,
                input=arguments,
                parent=model,
                tool_call_id=call_id,
                metadata=meta,
            )
            if error:
                step_record(
                    trace_id=trace.id,
                    kind=Step.Kind.ERROR,
                    name="invalid_arguments",
                    input=arguments,
                    error=error,
                    parent=call,
                    tool_call_id=call_id,
                    metadata=meta,
                )
                text = json.dumps({"error": error})
            else:
                step_record(
                    trace_id=trace.id,
                    kind=Step.Kind.TOOL_RESULT,
                    name=name,
                    input=arguments,
                    output=result,
                    parent=call,
                    tool_call_id=call_id,
                )
                text = json.dumps(result)
            messages.append({"role": "tool", "tool_call_id": call_id, "content": text})
    return trace_finish(trace_id=trace.id, status=Trace.Status.SUCCEEDED, output=answer)


def _demo_annotators() -> list:
    users = []
    group, _ = Group.objects.get_or_create(name="annotator")
    for username in DEMO_ANNOTATORS:
        user, created = get_user_model().objects.get_or_create(username=username)
        if created:
            user.set_unusable_password()
            user.save()
        user.groups.add(group)
        users.append(user)
    return users


def annotation_demo_seed() -> AnnotationQueue:
    """Create the demo traces and the labelled demo queue, once (safe to run again)."""
    existing = AnnotationQueue.objects.filter(name=DEMO_QUEUE).first()
    if existing is not None:
        return existing
    with transaction.atomic():
        error_categories_seed()
        annotators = _demo_annotators()
        traces = [demo_run_record(input=r["input"], turns=r["turns"]) for r in RUNS]
        queue = queue_create(
            name=DEMO_QUEUE,
            trace_ids=[t.id for t in traces],
            step_kinds=AnnotationQueue.StepKinds.ALL,
            overlap=2,
            annotators=annotators,
            instructions=(
                "Judge each step: good (it helps), bad (a mistake: pick the category, and "
                "for a wrong tool call give the corrected call), neutral (neither)."
            ),
        )
        run_of = {t.id: i for i, t in enumerate(traces)}
        for user in annotators:
            judgements = JUDGEMENTS[user.username]
            while (assignment := queue_next(queue=queue, user=user)) is not None:
                step = assignment.item.step
                verdict, category, call = judgements.get(
                    (run_of[step.trace_id], step.seq), ("good", None, None)
                )
                annotation_save(
                    user=user,
                    trace_id=step.trace_id,
                    step_seq=step.seq,
                    verdict=verdict,
                    category=category,
                    corrected_call=call,
                    queue_id=queue.id,
                )
    return queue
