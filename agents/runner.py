"""Run one trace of an agent on this worker: the body of the Celery task.

While the run lasts, a watcher thread stamps the trace's heartbeat every few seconds
and, twice a second, checks whether the run must stop (a cancel request, the trace
ended elsewhere, the run's deadline passed); then it sets the run's cancel event, which
interrupts a model call (and a tool call, where the executor can) in progress. If this
process dies (SIGKILL, OOM), the stamps stop and the reaper in any live worker ends the
trace ``failed`` with the reason; every step saved so far stays.
"""

from __future__ import annotations

import inspect
import logging
import os
import socket
import threading
import time

from django.conf import settings
from django.db import close_old_connections, connection

from agents.evals.functions import eval_functions
from agents.llm import ModelCancelled, ModelError, backend_for
from agents.models import Agent, AgentVersion, ModelEndpoint
from agents.strategies import STRATEGIES, RunCancelled
from toolsapp.models import Tool
from toolsapp.selectors import RunTools, run_tools, toolset_tools
from tooltrail.forksafe import database_work
from traces.models import Step, Trace
from traces.services import TraceError, step_record, trace_finish, trace_heartbeat, trace_start

logger = logging.getLogger(__name__)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


CHECK_SECONDS = 0.5


class RunWatch:
    """The run's companion thread: heartbeat, cancel and deadline."""

    def __init__(self, trace_id, *, deadline_seconds: float) -> None:
        self.trace_id = trace_id
        self.deadline_seconds = deadline_seconds
        self.ends_at = time.monotonic() + deadline_seconds
        self.cancel = threading.Event()
        self.reason = ""  # "cancelled", "ended" or "deadline" once cancel is set
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True, name=f"run-watch-{trace_id}")

    def must_stop(self) -> bool:
        """Whether the run must stop now (asked between steps; reads the database)."""
        if not self.cancel.is_set():
            reason = self._stop_reason()
            if reason:
                self.reason = reason
                self.cancel.set()
        return self.cancel.is_set()

    def _stop_reason(self) -> str:
        if time.monotonic() >= self.ends_at:
            return "deadline"
        row = (
            Trace.objects.filter(pk=self.trace_id).values_list("cancel_requested", "status").first()
        )
        if row is None or row[1] in Trace.FINISHED:
            return "ended"  # reaped as lost while this worker was stalled, or deleted
        return "cancelled" if row[0] else ""

    def _loop(self) -> None:
        beat_every = settings.TOOLTRAIL_HEARTBEAT_SECONDS
        next_beat = time.monotonic() + beat_every
        try:
            while not self.stop.wait(min(CHECK_SECONDS, beat_every)):
                try:
                    # Not while the run forks a tool call (see tooltrail.forksafe).
                    with database_work():
                        if time.monotonic() >= next_beat:
                            trace_heartbeat(trace_id=self.trace_id)
                            next_beat = time.monotonic() + beat_every
                        self.must_stop()
                except Exception:  # noqa: BLE001 - a missed beat is retried next time
                    logger.exception("watching trace %s failed", self.trace_id)
        finally:
            with database_work():
                connection.close()

    def __enter__(self) -> RunWatch:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(timeout=5)


def _run_settings(agent: Agent, version_id: int | None) -> dict:
    """What the run uses: the agent version the trace recorded when it was queued (so an
    edit made meanwhile does not change it), or the agent as it is for older traces."""
    version = AgentVersion.objects.filter(pk=version_id, agent=agent).first()
    if version is None:
        return {
            "strategy": agent.strategy,
            "endpoint": agent.endpoint,
            "tools": toolset_tools(toolset=agent.toolset),
            "system_prompt": agent.system_prompt,
            "max_steps": agent.max_steps,
            "strategy_config": agent.strategy_config,
        }
    snap = version.snapshot
    endpoint_settings = {k: v for k, v in snap["endpoint"].items() if k != "id"}
    rows = Tool.objects.in_bulk([t["id"] for t in snap["tools"]])
    tools = []
    for recorded in snap["tools"]:
        tool = rows.get(recorded["id"])
        if tool is None:
            continue  # deleted since; the model is not offered it
        # The schema and description as recorded: what the version says the model saw.
        tool.description, tool.parameters = recorded["description"], recorded["parameters"]
        tools.append(tool)
    return {
        "strategy": snap["strategy"],
        "endpoint": ModelEndpoint(id=snap["endpoint"]["id"], **endpoint_settings),
        "tools": tools,
        "system_prompt": snap["system_prompt"],
        "max_steps": snap["max_steps"],
        "strategy_config": snap.get("strategy_config") or {},
    }


def _agent_of(trace_id) -> tuple[bool, Agent | None]:
    """(whether the trace exists, its agent if that still exists)."""
    metadata = Trace.objects.filter(pk=trace_id).values_list("metadata", flat=True).first()
    if metadata is None:
        return False, None
    agent_id = metadata.get("agent_id") if isinstance(metadata, dict) else None
    if not isinstance(agent_id, int):
        return True, None
    return True, Agent.objects.select_related("endpoint", "toolset").filter(pk=agent_id).first()


def _role_backends(agent: Agent) -> dict:
    """Backends for strategies whose roles each name an endpoint in the agent's config."""
    names = {
        role: name
        for role, name in (agent.strategy_config or {}).items()
        if role in ("planner", "caller", "summarizer") and isinstance(name, str) and name
    }
    endpoints = {e.name: e for e in ModelEndpoint.objects.filter(name__in=names.values())}
    missing = sorted(set(names.values()) - set(endpoints))
    if missing:
        raise ModelError(
            f"the agent's strategy names endpoints that do not exist: {', '.join(missing)}"
        )
    return {role: backend_for(endpoints[name]) for role, name in names.items()}


def _accepts(callable_, name: str) -> bool:
    parameters = inspect.signature(callable_).parameters.values()
    return any(p.name == name or p.kind is p.VAR_KEYWORD for p in parameters)


class _Interruptible:
    """A backend whose calls are given the run's cancel event; a call cut short by it
    ends the run as cancelled (or past its deadline), not as a failed model call."""

    def __init__(self, backend, cancel: threading.Event) -> None:
        self.backend = backend
        self.cancel = cancel
        self.takes_cancel = _accepts(backend.complete, "cancel")

    def complete(self, messages, tools, **kwargs):
        if self.takes_cancel:
            kwargs["cancel"] = self.cancel
        try:
            return self.backend.complete(messages, tools, **kwargs)
        except ModelCancelled:
            raise RunCancelled() from None

    def __getattr__(self, name: str):
        return getattr(self.backend, name)


def trace_run(*, trace_id) -> Trace | None:
    """Run the agent behind a queued trace to its end. Returns the finished trace, or
    None when the trace was not queued (already run, cancelled before start)."""
    close_old_connections()
    exists, agent = _agent_of(trace_id)
    if not exists:
        logger.warning("trace %s does not exist; nothing to run", trace_id)
        return None
    deadline = agent.run_deadline if agent else settings.TOOLTRAIL_RUN_DEADLINE_SECONDS
    try:
        trace = trace_start(trace_id=trace_id, worker=worker_name(), deadline_seconds=deadline)
    except TraceError as exc:
        logger.info("not running: %s", exc)
        return None
    if agent is None:
        return trace_finish(
            trace_id=trace_id,
            status=Trace.Status.FAILED,
            error="the trace's agent no longer exists",
        )

    with RunWatch(trace_id, deadline_seconds=deadline) as watch:
        try:
            settings_ = _run_settings(agent, trace.metadata.get("agent_version_id"))
            # An evaluation item brings its own functions and conversation (see agents.evals);
            # otherwise the recorded version's tools, or a retrieval over the toolset when
            # it is large (tool_search).
            evaluation = trace.metadata.get("eval") or {}
            if "tools" in evaluation:
                offered = RunTools(tools=eval_functions(evaluation["tools"]))
            elif len(settings_["tools"]) > settings.TOOLTRAIL_TOOL_SEARCH_THRESHOLD > 0:
                offered = run_tools(toolset=agent.toolset, query=trace.input)
            else:
                offered = RunTools(tools=settings_["tools"])
            strategy_class = STRATEGIES[settings_["strategy"]]
            options = {"single_turn": True} if evaluation.get("single_turn") else {}
            if _accepts(strategy_class, "cancel"):
                options["cancel"] = watch.cancel  # interrupts a tool call in progress
            if offered.search is not None:
                options["tool_search"] = offered.search
            strategy = strategy_class(
                trace_id=trace_id,
                backend=_Interruptible(backend_for(settings_["endpoint"]), watch.cancel),
                tools=offered.tools,
                system_prompt=settings_["system_prompt"],
                max_steps=settings_["max_steps"],
                should_stop=watch.must_stop,
                config=settings_["strategy_config"],
                role_backends={
                    role: _Interruptible(backend, watch.cancel)
                    for role, backend in _role_backends(agent).items()
                },
                **options,
            )
            fork = trace.metadata.get("fork")
            if fork:
                # Re-run from a step of another trace (agents.services.agent_run_fork).
                outcome = strategy.resume(fork)
            else:
                outcome = strategy.run(trace.input, history=evaluation.get("messages"))
        except RunCancelled:
            if watch.reason == "deadline":
                return trace_finish(
                    trace_id=trace_id,
                    status=Trace.Status.FAILED,
                    error=f"the run passed its deadline of {deadline:g} s",
                )
            return trace_finish(
                trace_id=trace_id, status=Trace.Status.CANCELLED, error="cancelled by a user"
            )
        except TraceError as exc:
            # The trace was closed under the run (see RunWatch); its ending stands.
            logger.warning("run of trace %s stopped: %s", trace_id, exc)
            return Trace.objects.get(pk=trace_id)
        except ModelError as exc:
            # Raised building the backend (a missing API key, no model file); errors of
            # the calls themselves are recorded by the strategy.
            step_record(trace_id=trace_id, kind=Step.Kind.ERROR, name="model_error", error=str(exc))
            return trace_finish(trace_id=trace_id, status=Trace.Status.FAILED, error=str(exc))
        except Exception as exc:
            logger.exception("run of trace %s crashed", trace_id)
            step_record(
                trace_id=trace_id,
                kind=Step.Kind.ERROR,
                name="crash",
                error=f"{type(exc).__name__}: {exc}",
            )
            return trace_finish(
                trace_id=trace_id,
                status=Trace.Status.FAILED,
                error=f"internal error: {type(exc).__name__}: {exc}",
            )
        return trace_finish(
            trace_id=trace_id, status=outcome.status, output=outcome.output, error=outcome.error
        )
