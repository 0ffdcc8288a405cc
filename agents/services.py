"""Starting and cancelling agent runs."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.db import transaction

from traces.models import Trace
from traces.services import trace_create, trace_finish, trace_requeue_note, traces_queued_lost

from .models import Agent

RESUMABLE_STRATEGIES = ("function_calling", "self_refine", "decide_first")


class RunError(Exception):
    """A run cannot be started or cancelled; the message says why."""


class EnqueueError(RunError):
    """The task queue (the broker) cannot be reached."""


def agent_run_start(
    *,
    agent: Agent,
    input: str,
    user=None,
    metadata: dict | None = None,
    enqueue: bool = True,
) -> Trace:
    """Create a queued trace and enqueue its run on the ``agents`` queue after commit.

    If the broker cannot be reached the trace ends ``failed`` with the reason (nothing
    stays queued forever) and RunError is raised. ``metadata`` is merged into the trace's
    (an evaluation item puts its functions and messages there); ``enqueue=False`` leaves
    the queued trace for the caller to run (``agents.runner.trace_run``) in its own process.
    """
    text = (input or "").strip()
    if not text:
        raise RunError("the input is empty: say what the agent should do")
    with transaction.atomic():
        trace = trace_create(
            name=agent.name,
            input=text,
            agent_slug=agent.slug,
            created_by=user if user is not None and user.is_authenticated else None,
            metadata={**_run_metadata(agent), **(metadata or {})},
        )
        if not enqueue:
            return trace

        _enqueue_on_commit(trace)
    return trace


def _run_metadata(agent: Agent) -> dict[str, Any]:
    """What a trace records about the agent it ran: ids for the runner, and the price of
    its endpoint at the time (``config["price"]``: ``prompt_per_1k``/``completion_per_1k``)
    so the trace's cost never depends on a later edit."""
    meta: dict[str, Any] = {
        "agent_id": agent.id,
        "endpoint": agent.endpoint.name,
        "strategy": agent.strategy,
    }
    price = (agent.endpoint.config or {}).get("price")
    if isinstance(price, dict):
        meta["price"] = {k: price[k] for k in ("prompt_per_1k", "completion_per_1k") if k in price}
    return meta


def _enqueue_on_commit(trace: Trace) -> None:
    """Enqueue the trace's run after commit, so a worker never looks for a trace it
    cannot see yet (also when a caller wraps this in a transaction of its own). If the
    broker cannot be reached the trace ends ``failed`` and EnqueueError is raised."""
    from .tasks import agent_run_task

    def enqueue() -> None:
        try:
            # The queue comes from CELERY_TASK_ROUTES.
            agent_run_task.apply_async(args=[str(trace.id)], retry=False)
        except Exception as exc:
            trace_finish(
                trace_id=trace.id,
                status=Trace.Status.FAILED,
                error=f"could not enqueue the run: {exc}",
            )
            raise EnqueueError(f"could not reach the task queue: {exc}") from exc

    transaction.on_commit(enqueue)


def agent_run_fork(
    *, trace: Trace, seq: int, arguments: Any, user=None, enqueue: bool = True
) -> Trace:
    """Re-run the agent of ``trace`` from its tool call #``seq`` with edited ``arguments``.

    Preconditions (checked first, RunError otherwise): step ``seq`` is a tool call of a
    model call in ``trace``; the trace's agent still exists; ``arguments`` is an object
    valid against the schema stored on the step. The new trace copies the steps before
    ``seq``, records the fork point and parent trace, and its run (queued at once, unless
    ``enqueue=False``) starts by making the edited call, then the model's other calls of
    that turn, then goes on.
    """
    from toolsapp.validation import ToolArgumentsError, arguments_check
    from traces.models import Step
    from traces.selectors import model_call_conversation
    from traces.services import TraceError, trace_fork_create

    step = Step.objects.filter(trace_id=trace.id, seq=seq).select_related("parent").first()
    if step is None or step.kind != Step.Kind.TOOL_CALL:
        raise RunError(f"step #{seq} is not a tool call: only a tool call can be edited")
    model_step = step.parent
    if model_step is None or model_step.kind != Step.Kind.MODEL_CALL:
        raise RunError("this tool call was not proposed by a model call; nothing to re-run")
    agent = (
        Agent.objects.select_related("endpoint").filter(pk=trace.metadata.get("agent_id")).first()
    )
    if agent is None:
        raise RunError("the agent that ran this trace no longer exists")
    # Resuming mid-turn is defined for the plain loop (and the ones that reuse its turn:
    # self-refine, decide-first); a search tree or a planner has state a trace does not hold.
    if trace.metadata.get("strategy", "function_calling") not in RESUMABLE_STRATEGIES:
        raise RunError(
            f"re-running from a step is not available for the {trace.metadata['strategy']!r} "
            "strategy; use the function-calling loop"
        )
    if not isinstance(arguments, dict):
        raise RunError("the arguments must be a JSON object")
    schema = step.metadata.get("schema") if isinstance(step.metadata, dict) else None
    if isinstance(schema, dict):
        try:
            arguments_check(schema=schema, arguments=arguments)
        except ToolArgumentsError as exc:
            raise RunError(f"the arguments do not fit {step.name}'s schema: {exc}") from exc
    conversation = model_call_conversation(step=model_step)
    if conversation is None:
        raise RunError("the conversation before this call cannot be rebuilt from the trace")

    # The model's turn, with the edited call in place of the original.
    calls = []
    for call in (model_step.output or {}).get("tool_calls") or []:
        raw = call.get("arguments")
        if call.get("id") == step.tool_call_id:
            raw = json.dumps(arguments)
        elif not isinstance(raw, str):
            raw = json.dumps(raw)
        calls.append({"id": call.get("id") or "", "name": call.get("name") or "", "arguments": raw})
    reply = {
        "role": "assistant",
        "content": (model_step.output or {}).get("content") or None,
        "tool_calls": [
            {
                "id": c["id"],
                "type": "function",
                "function": {"name": c["name"], "arguments": c["arguments"]},
            }
            for c in calls
        ],
    }
    # Calls of that turn before the edited one keep their results (their steps are copied).
    messages = [*conversation, reply]
    done = {
        s.tool_call_id: s
        for s in Step.objects.filter(
            trace_id=trace.id, seq__lt=seq, kind__in=(Step.Kind.TOOL_RESULT, Step.Kind.ERROR)
        ).exclude(tool_call_id="")
    }
    pending = []
    for call in calls:
        earlier = done.get(call["id"]) if call["id"] != step.tool_call_id else None
        if earlier is not None and not pending:
            content = (
                json.dumps({"error": earlier.error})
                if earlier.kind == Step.Kind.ERROR
                else json.dumps(earlier.output, default=str)
            )
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": content})
        else:
            pending.append(call)
    metadata = {
        **_run_metadata(agent),
        "fork": {
            "messages": messages,
            "sent": len(conversation),
            "model_seq": model_step.seq,
            "calls": pending,
        },
    }
    try:
        with transaction.atomic():
            new = trace_fork_create(
                source=trace,
                fork_seq=seq,
                input=trace.input,
                agent_slug=agent.slug,
                created_by=user if user is not None and user.is_authenticated else None,
                metadata=metadata,
            )
            if enqueue:
                _enqueue_on_commit(new)
    except TraceError as exc:
        raise RunError(str(exc)) from exc
    return new


REQUEUE_TRIES = 3


def runs_requeue_lost(*, after: float | None = None) -> list[Trace]:
    """Queued runs no worker took within ``after`` seconds (their task was lost with a
    restarted Redis or a worker killed before it took it) are enqueued again — a trace
    runs once however many messages name it — and after three tries end ``failed``.
    Returns the traces ended."""
    from .tasks import agent_run_task

    seconds = settings.TOOLTRAIL_QUEUED_LOST_AFTER_SECONDS if after is None else after
    ended = []
    for trace_id in traces_queued_lost(after=seconds):
        tries = trace_requeue_note(trace_id=trace_id)
        if tries is None:
            continue
        if tries > REQUEUE_TRIES:
            ended.append(
                trace_finish(
                    trace_id=trace_id,
                    status=Trace.Status.FAILED,
                    error=f"no worker took the run: still queued after {REQUEUE_TRIES} "
                    f"tries of {seconds:g} s each (is a worker running on the agents queue?)",
                )
            )
        else:
            agent_run_task.apply_async(args=[str(trace_id)], retry=False)
    return ended
