"""Starting and cancelling agent runs."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction

from toolsapp.selectors import toolset_tools
from tooltrail.copies import copy_name
from traces.models import Trace
from traces.services import trace_create, trace_finish, trace_requeue_note, traces_queued_lost

from .llm import ModelError, backend_for
from .models import Agent, AgentVersion, ModelEndpoint

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
    rerun_of: Trace | None = None,
) -> Trace:
    """Create a queued trace and enqueue its run on the ``agents`` queue after commit.

    The trace records the agent version it runs with (``metadata.agent_version_id`` and
    ``agent_version``); ``rerun_of`` names the trace this one repeats.

    If the broker cannot be reached the trace ends ``failed`` with the reason (nothing
    stays queued forever) and RunError is raised. ``metadata`` is merged into the trace's
    (an evaluation item puts its functions and messages there); ``enqueue=False`` leaves
    the queued trace for the caller to run (``agents.runner.trace_run``) in its own process.
    """
    text = (input or "").strip()
    if not text:
        raise RunError("the input is empty: say what the agent should do")
    with transaction.atomic():
        version = agent_version_record(agent=agent)
        extra = {"rerun_of": str(rerun_of.id)} if rerun_of is not None else {}
        trace = trace_create(
            name=agent.name,
            input=text,
            agent_slug=agent.slug,
            created_by=user if user is not None and user.is_authenticated else None,
            metadata={
                **_run_metadata(agent),
                "agent_version_id": version.id,
                "agent_version": version.number,
                **extra,
                **(metadata or {}),
            },
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
    version = agent_version_record(agent=agent)
    metadata = {
        **_run_metadata(agent),
        "agent_version_id": version.id,
        "agent_version": version.number,
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


# --- building agents and endpoints ----------------------------------------------------


class DeleteRefused(Exception):
    """Something still depends on the object; the message says what."""


@transaction.atomic
def endpoint_duplicate(*, endpoint: ModelEndpoint) -> ModelEndpoint:
    """A copy of ``endpoint`` under a free name (``<name>-copy``)."""
    copy = ModelEndpoint.objects.get(pk=endpoint.pk)
    copy.pk = None
    copy.name = copy_name(model=ModelEndpoint, field="name", base=endpoint.name, max_length=100)
    copy.save()
    return copy


def endpoint_delete(*, endpoint: ModelEndpoint) -> None:
    """Delete an endpoint no agent uses (raises DeleteRefused naming the agents)."""
    users = list(endpoint.agents.values_list("name", flat=True))
    if users:
        raise DeleteRefused(
            f"{endpoint.name} is used by {', '.join(users)}: point them elsewhere first"
        )
    endpoint.delete()


@dataclass
class ConnectionTest:
    ok: bool
    latency_ms: float
    reply: str = ""
    error: str = ""


def endpoint_test(*, endpoint: ModelEndpoint) -> ConnectionTest:
    """One short model call ("Say OK.") without tools: its latency and reply, or the error.
    The endpoint's own timeout bounds it (OpenAI-compatible endpoints: ``config.timeout``)."""
    started = time.monotonic()
    try:
        reply = backend_for(endpoint).complete(
            [{"role": "user", "content": "Reply with the single word OK."}], []
        )
    except ModelError as exc:
        return ConnectionTest(False, (time.monotonic() - started) * 1000, error=str(exc))
    except Exception as exc:  # noqa: BLE001 - any failure is the answer the user asked for
        return ConnectionTest(
            False, (time.monotonic() - started) * 1000, error=f"{type(exc).__name__}: {exc}"
        )
    return ConnectionTest(True, (time.monotonic() - started) * 1000, reply=reply.content[:200])


@transaction.atomic
def agent_save(*, agent: Agent) -> Agent:
    """Save a created or edited agent and record its version."""
    agent.save()
    agent_version_record(agent=agent)
    return agent


@transaction.atomic
def agent_duplicate(*, agent: Agent) -> Agent:
    """A copy of ``agent`` (same endpoint, toolset, prompt) under a free slug."""
    copy = Agent.objects.get(pk=agent.pk)
    copy.pk = None
    copy.slug = copy_name(model=Agent, field="slug", base=agent.slug, max_length=50)
    copy.name = f"{agent.name} (copy)"[:100]
    return agent_save(agent=copy)


def agent_delete(*, agent: Agent) -> None:
    """Delete an agent that has never run (its runs' traces name it)."""
    runs = Trace.objects.filter(agent_slug=agent.slug).count()
    if runs:
        raise DeleteRefused(
            f"{agent.name} has {runs} run{'s' if runs != 1 else ''}: "
            "an agent with runs is kept so its traces stay explained"
        )
    agent.delete()


# --- versions -------------------------------------------------------------------------


def agent_snapshot(*, agent: Agent) -> dict[str, Any]:
    """What a run of ``agent`` uses now: prompt, strategy, step budget, the toolset's
    active tools with their schemas, and the endpoint's settings (never a key)."""
    return {
        "name": agent.name,
        "system_prompt": agent.system_prompt,
        "strategy": agent.strategy,
        "max_steps": agent.max_steps,
        "strategy_config": agent.strategy_config,
        "toolset": agent.toolset.slug if agent.toolset else None,
        "tools": [
            {
                "id": t.id,
                "name": t.name,
                "source": t.source,
                "kind": t.kind,
                "description": t.description,
                "parameters": t.parameters,
            }
            for t in toolset_tools(toolset=agent.toolset)
        ],
        "endpoint": {"id": agent.endpoint_id, **agent.endpoint.settings_snapshot()},
    }


def agent_version_record(*, agent: Agent) -> AgentVersion:
    """The version matching the agent as saved now: the latest one if nothing changed,
    else a new one numbered after it. Reads the agent afresh (a caller may hold a stale
    copy) under a row lock, so two runs starting at once do not both take number n+1."""
    with transaction.atomic():
        current = (
            Agent.objects.select_for_update(of=("self",))
            .select_related("endpoint", "toolset")
            .get(pk=agent.pk)
        )
        snapshot = agent_snapshot(agent=current)
        digest = hashlib.sha256(
            json.dumps(snapshot, sort_keys=True, default=str).encode()
        ).hexdigest()
        latest = current.versions.order_by("-number").first()
        if latest is not None and latest.digest == digest:
            return latest
        return AgentVersion.objects.create(
            agent=current,
            number=(latest.number + 1) if latest else 1,
            snapshot=snapshot,
            digest=digest,
        )


def agent_run_again(*, trace: Trace, input: str | None = None, user=None) -> Trace:
    """Run the agent of a finished ``trace`` again, on the same input or an edited one.
    The agent runs as it is now (a new version if it changed since)."""
    if not trace.is_finished:
        raise RunError("this run has not finished yet: run it again once it has")
    agent = (
        Agent.objects.filter(pk=trace.metadata.get("agent_id")).first()
        or Agent.objects.filter(slug=trace.agent_slug).first()
        if trace.agent_slug or trace.metadata.get("agent_id")
        else None
    )
    if agent is None:
        raise RunError("this trace's agent no longer exists (or it did not come from an agent)")
    return agent_run_start(
        agent=agent, input=trace.input if input is None else input, user=user, rerun_of=trace
    )


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
