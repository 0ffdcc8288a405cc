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
    from .tasks import agent_run_task

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
                "agent_id": agent.id,
                "endpoint": agent.endpoint.name,
                "strategy": agent.strategy,
                "agent_version_id": version.id,
                "agent_version": version.number,
                **extra,
                **(metadata or {}),
            },
        )
        if not enqueue:
            return trace

        def send() -> None:
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

        # After commit, so a worker never looks for a trace it cannot see yet (also
        # when a caller wraps this in a transaction of its own).
        transaction.on_commit(send)
    return trace


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
