"""Run one trace of an agent on this worker: the body of the Celery task.

While the run lasts, a heartbeat thread stamps the trace every few seconds. If this
process dies (SIGKILL, OOM), the stamps stop and the reaper in any live worker ends the
trace ``failed`` with the reason; every step saved so far stays.
"""

from __future__ import annotations

import logging
import os
import socket
import threading

from django.conf import settings
from django.db import close_old_connections, connection
from django.db.models import Q

from agents.evals.functions import eval_functions
from agents.llm import ModelError, backend_for
from agents.models import Agent, AgentVersion, ModelEndpoint
from agents.strategies import STRATEGIES, RunCancelled
from toolsapp.models import Tool
from toolsapp.selectors import toolset_tools
from traces.models import Step, Trace
from traces.services import TraceError, step_record, trace_finish, trace_heartbeat, trace_start

logger = logging.getLogger(__name__)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Heartbeat:
    def __init__(self, trace_id) -> None:
        self.trace_id = trace_id
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True, name=f"heartbeat-{trace_id}")

    def _loop(self) -> None:
        try:
            while not self.stop.wait(settings.TOOLTRAIL_HEARTBEAT_SECONDS):
                try:
                    trace_heartbeat(trace_id=self.trace_id)
                except Exception:  # noqa: BLE001 - a missed beat is retried next time
                    logger.exception("heartbeat for trace %s failed", self.trace_id)
        finally:
            connection.close()

    def __enter__(self) -> Heartbeat:
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


def trace_run(*, trace_id) -> Trace | None:
    """Run the agent behind a queued trace to its end. Returns the finished trace, or
    None when the trace was not queued (already run, cancelled before start)."""
    close_old_connections()
    try:
        trace = trace_start(trace_id=trace_id, worker=worker_name())
    except Trace.DoesNotExist:
        logger.warning("trace %s does not exist; nothing to run", trace_id)
        return None
    except TraceError as exc:
        logger.info("not running: %s", exc)
        return None

    def should_stop() -> bool:
        # A cancel request, or the trace ended elsewhere (reaped as lost while this
        # worker was stalled): either way this run must not write on.
        return (
            Trace.objects.filter(pk=trace_id)
            .filter(Q(cancel_requested=True) | Q(status__in=Trace.FINISHED))
            .exists()
        )

    agent = (
        Agent.objects.select_related("endpoint", "toolset")
        .filter(pk=trace.metadata.get("agent_id"))
        .first()
    )
    if agent is None:
        return trace_finish(
            trace_id=trace_id,
            status=Trace.Status.FAILED,
            error="the trace's agent no longer exists",
        )

    with Heartbeat(trace_id):
        try:
            settings_ = _run_settings(agent, trace.metadata.get("agent_version_id"))
            # An evaluation item brings its own functions and conversation (see agents.evals).
            evaluation = trace.metadata.get("eval") or {}
            tools = (
                eval_functions(evaluation["tools"]) if "tools" in evaluation else settings_["tools"]
            )
            strategy = STRATEGIES[settings_["strategy"]](
                trace_id=trace_id,
                backend=backend_for(settings_["endpoint"]),
                tools=tools,
                system_prompt=settings_["system_prompt"],
                max_steps=settings_["max_steps"],
                should_stop=should_stop,
                config=settings_["strategy_config"],
                role_backends=_role_backends(agent),
                **({"single_turn": True} if evaluation.get("single_turn") else {}),
            )
            outcome = strategy.run(trace.input, history=evaluation.get("messages"))
        except RunCancelled:
            return trace_finish(
                trace_id=trace_id, status=Trace.Status.CANCELLED, error="cancelled by a user"
            )
        except TraceError as exc:
            # The trace was closed under the run (see should_stop); its ending stands.
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
