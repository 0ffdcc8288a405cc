"""The function-calling loop (OpenAI tool-call format).

The model proposes calls; each call's arguments are parsed and validated against the
tool's JSON Schema; valid calls run; results (or a clear error) go back to the model;
until it answers without calls or the agent's step budget runs out. Every model call,
tool call, tool result and error becomes a step, written through the traces service.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from django.utils import timezone

from agents.llm import ModelBackend, ModelReply, ToolCallRequest
from toolsapp.executors import ToolCancelled, ToolExecutionError
from toolsapp.models import Tool
from toolsapp.retrieval.search import ToolSearch
from toolsapp.selectors import tool_openai_spec, tools_by_model_name
from toolsapp.services import tool_execute
from toolsapp.validation import ToolArgumentsError, arguments_check, arguments_parse
from traces.models import Step, Trace
from traces.services import call_ended, call_started, step_record

from .base import Conversation, ModelCallFailed, Outcome, RunCancelled

__all__ = ["FunctionCallingLoop", "Outcome", "RunCancelled"]


class FunctionCallingLoop:
    label = "Function-calling loop"

    def __init__(
        self,
        *,
        trace_id,
        backend: ModelBackend,
        tools: list[Tool],
        system_prompt: str,
        max_steps: int,
        should_stop: Callable[[], bool],
        single_turn: bool = False,
        config: dict[str, Any] | None = None,
        role_backends: dict[str, ModelBackend] | None = None,
        cancel: threading.Event | None = None,
        tool_search: ToolSearch | None = None,
    ) -> None:
        # config and role_backends are for strategies built on this loop (see their modules).
        self.config = config or {}
        # single_turn: record the calls of the first reply without running them and stop
        # there (how BFCL-style evaluations read a model: one reply, its calls scored).
        self.single_turn = single_turn
        self.trace_id = trace_id
        self.backend = backend
        # Keyed by the name the model sees (prefixed with the source where two tools
        # share a name), so a call maps back to exactly one tool. With a large toolset the
        # model starts with some tools and tool_search; what a search finds is offered
        # from the next turn on.
        self.tool_search = tool_search
        self.tools: dict[str, Tool] = {}
        self.tool_specs: list[dict[str, Any]] = []
        self._offer([tool_search.tool, *tools] if tool_search else tools)
        self.system_prompt = system_prompt
        self.max_steps = max_steps
        self.should_stop = should_stop
        # Set (by the runner's watcher) when the run must stop: interrupts a tool call in
        # progress (model calls: the runner wraps the backend).
        self.cancel = cancel

    def _offer(self, tools: list[Tool]) -> None:
        """Offer more tools. Names already offered never change; a newcomer whose name
        clashes is sent under its prefixed name (see tools_by_model_name)."""
        offered = list(self.tools.values())
        pks = {t.pk for t in offered if t.pk is not None}
        objects = {id(t) for t in offered}
        new = [t for t in tools if id(t) not in objects and (t.pk is None or t.pk not in pks)]
        fresh = {id(t) for t in new}
        for name, tool in tools_by_model_name(tools=[*offered, *new]).items():
            if id(tool) in fresh and name not in self.tools:
                self.tools[name] = tool
                self.tool_specs.append(tool_openai_spec(tool=tool, name=name))

    def _check_cancel(self) -> None:
        if self.should_stop():
            raise RunCancelled()

    def _first_messages(
        self, user_input: str, history: list[dict[str, Any]] | None
    ) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        if history:
            messages.extend(history)
        else:
            messages.append({"role": "user", "content": user_input})
        return messages

    def run(self, user_input: str, *, history: list[dict[str, Any]] | None = None) -> Outcome:
        """Run to a final answer. ``history``, when given, is the conversation to start
        from (e.g. an evaluation item's messages) instead of the one user message."""
        conversation = Conversation(
            trace_id=self.trace_id,
            backend=self.backend,
            messages=self._first_messages(user_input, history),
        )
        return self._loop(conversation, turns=self.max_steps)

    def resume(self, fork: dict[str, Any]) -> Outcome:
        """Go on from a fork point (``agents.services.agent_run_fork``): the steps before
        it are already in the trace; make the model's pending calls of that turn (the
        edited one first), then carry on the loop."""
        model_step = Step.objects.get(trace_id=self.trace_id, seq=fork["model_seq"])
        conversation = Conversation(
            trace_id=self.trace_id, backend=self.backend, messages=list(fork["messages"])
        )
        conversation.sent, conversation.previous_seq = fork["sent"], model_step.seq
        # A stateful backend (a recording) learns where the conversation stands.
        if hasattr(self.backend, "continue_from"):
            self.backend.continue_from(conversation.messages)
        for call in fork["calls"]:
            self._check_cancel()
            request = ToolCallRequest(id=call["id"], name=call["name"], arguments=call["arguments"])
            conversation.messages.append(
                {
                    "role": "tool",
                    "tool_call_id": request.id,
                    "content": self._run_call(request, model_step),
                }
            )
        turns_used = Step.objects.filter(trace_id=self.trace_id, kind=Step.Kind.MODEL_CALL).count()
        return self._loop(conversation, turns=max(1, self.max_steps - turns_used))

    def _loop(self, conversation: Conversation, *, turns: int) -> Outcome:
        for _turn in range(turns):
            self._check_cancel()
            try:
                reply, model_step = conversation.ask(tool_specs=self.tool_specs)
                reply = self._revise(conversation, reply, model_step)
            except ModelCallFailed as exc:
                return Outcome(Trace.Status.FAILED, error=f"model call failed: {exc}")
            if not reply.tool_calls:
                return self._answer(reply.content, model_step)
            if self.single_turn:
                for call in reply.tool_calls:
                    self._record_call(call, model_step)
                calls = [{"name": c.name, "arguments": c.arguments} for c in reply.tool_calls]
                return Outcome(Trace.Status.SUCCEEDED, output=json.dumps(calls))
            # Parallel calls of one turn are siblings under the model call.
            for call in reply.tool_calls:
                self._check_cancel()
                conversation.messages.append(
                    {
                        "role": "tool",
                        "tool_call_id": call.id,
                        "content": self._run_call(call, model_step),
                    }
                )
        return Outcome(
            Trace.Status.FAILED, error=f"no final answer within {self.max_steps} model turns"
        )

    def _answer(self, content: str, model_step: Step) -> Outcome:
        """Record the final answer under the model call that gave it; the run succeeded."""
        step_record(
            trace_id=self.trace_id,
            kind=Step.Kind.FINAL,
            name="answer",
            output={"content": content},
            parent=model_step,
        )
        return Outcome(Trace.Status.SUCCEEDED, output=content)

    def _revise(
        self, conversation: Conversation, reply: ModelReply, model_step: Step
    ) -> ModelReply:
        """A strategy's chance to change a reply before its calls run (self-refinement)."""
        return reply

    @staticmethod
    def _schema_meta(tool: Tool | None) -> dict[str, Any] | None:
        """A call step's metadata: the schema as it was at call time (the debugger shows
        what was checked) and which tool the model-facing name stood for."""
        if tool is None:
            return None
        meta: dict[str, Any] = {"schema": tool.parameters}
        if isinstance(tool, Tool):  # (evaluations pass plain function specs)
            meta["tool"] = {"id": tool.pk, "name": tool.name, "source": tool.source}
        return meta

    def _record_call(self, call, model_step: Step) -> None:
        """Record a call without running it: the call step, and an error step when the
        arguments cannot be parsed or break the schema."""
        try:
            arguments: Any = arguments_parse(call.arguments)
        except ToolArgumentsError as exc:
            arguments, problem = call.arguments, exc
        else:
            problem = None
        tool = self.tools.get(call.name)
        schema_meta = self._schema_meta(tool)
        call_step = step_record(
            trace_id=self.trace_id,
            kind=Step.Kind.TOOL_CALL,
            name=call.name,
            input=arguments,
            parent=model_step,
            tool_call_id=call.id,
            metadata=schema_meta,
        )
        if problem is None and tool is not None:
            try:
                arguments_check(schema=tool.parameters, arguments=arguments)
            except ToolArgumentsError as exc:
                problem = exc
        if tool is None:
            problem = f"there is no tool named {call.name!r}"
        if call.problem:
            problem = f"this tool call cannot be run: {call.problem}"
        if problem is not None:
            step_record(
                trace_id=self.trace_id,
                kind=Step.Kind.ERROR,
                name="invalid_arguments" if tool else "unknown_tool",
                input=arguments,
                error=str(problem),
                parent=call_step,
                tool_call_id=call.id,
                metadata=schema_meta,
            )

    def _run_call(self, call, model_step: Step) -> str:
        """Record and run one tool call; return what the model gets to read."""
        parse_error: ToolArgumentsError | None = None
        try:
            arguments: Any = arguments_parse(call.arguments)
        except ToolArgumentsError as exc:
            parse_error = exc
            arguments = call.arguments  # keep the raw text so the step shows what the model wrote
        tool = self.tools.get(call.name)
        # The schema as it was at call time, so the debugger shows what was checked.
        schema_meta = self._schema_meta(tool)
        call_step = step_record(
            trace_id=self.trace_id,
            kind=Step.Kind.TOOL_CALL,
            name=call.name,
            input=arguments,
            parent=model_step,
            tool_call_id=call.id,
            metadata=schema_meta,
        )

        def error(name: str, message: str, started=None) -> str:
            error_step = step_record(
                trace_id=self.trace_id,
                kind=Step.Kind.ERROR,
                name=name,
                input=arguments,
                error=message,
                parent=call_step,
                tool_call_id=call.id,
                started_at=started,
                metadata=schema_meta,
            )
            # The message as stored: capped, with its "truncated" marker if it was cut.
            return json.dumps({"error": error_step.error})

        if call.problem:
            return error("invalid_tool_call", f"this tool call cannot be run: {call.problem}")
        if tool is None:
            known = ", ".join(sorted(self.tools)) or "none"
            return error(
                "unknown_tool", f"there is no tool named {call.name!r}; available tools: {known}"
            )
        if parse_error is not None:
            return error("invalid_arguments", str(parse_error))
        started = timezone.now()
        call_id = call_started(
            trace_id=self.trace_id, kind="tool", name=call.name, parent_seq=call_step.seq
        )
        announced = False
        try:
            if self.tool_search is not None and tool is self.tool_search.tool:
                result, found = self.tool_search.call(arguments)
                self._offer(found)
            else:
                result = tool_execute(tool=tool, arguments=arguments, cancel=self.cancel)
        except ToolCancelled as exc:
            # The run's cancel event stopped the call (a cancel, or the run's deadline):
            # say which call was cut short, then end the run.
            error("tool_cancelled", f"{call.name} was stopped: {exc}", started)
            raise RunCancelled() from exc
        except ToolArgumentsError as exc:
            return error("invalid_arguments", str(exc), started)
        except ToolExecutionError as exc:
            return error("tool_error", f"{call.name} failed: {exc}", started)
        else:
            # The running row gives way to the result's step: one event for both.
            call_ended(trace_id=self.trace_id, call_id=call_id, announce=False)
            result_step = step_record(
                trace_id=self.trace_id,
                kind=Step.Kind.TOOL_RESULT,
                name=call.name,
                input=arguments,
                output=result,
                parent=call_step,
                tool_call_id=call.id,
                started_at=started,
                ended_at=timezone.now(),
                ended_call=call_id,
            )
            announced = True
        finally:
            # The call failed (or was cancelled): the running row gives way.
            if not announced:
                call_ended(trace_id=self.trace_id, call_id=call_id)
        # The model reads the result as stored: a big one capped, with its marker.
        return json.dumps(result_step.output, default=str)
