"""The function-calling loop (OpenAI tool-call format).

The model proposes calls; each call's arguments are parsed and validated against the
tool's JSON Schema; valid calls run; results (or a clear error) go back to the model;
until it answers without calls or the agent's step budget runs out. Every model call,
tool call, tool result and error becomes a step, written through the traces service.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from agents.llm import ModelBackend, ModelError
from toolsapp.executors import ToolExecutionError
from toolsapp.models import Tool
from toolsapp.retrieval.search import ToolSearch
from toolsapp.services import tool_execute
from toolsapp.validation import ToolArgumentsError, arguments_parse
from traces.models import Step, Trace
from traces.services import step_record


class RunCancelled(Exception):
    """Someone asked the run to stop."""


@dataclass
class Outcome:
    status: str
    output: str = ""
    error: str = ""


class FunctionCallingLoop:
    def __init__(
        self,
        *,
        trace_id,
        backend: ModelBackend,
        tools: list[Tool],
        system_prompt: str,
        max_steps: int,
        should_stop: Callable[[], bool],
        tool_search: ToolSearch | None = None,
    ) -> None:
        self.trace_id = trace_id
        self.backend = backend
        # With a large toolset the model starts with some tools and tool_search; what a
        # search finds is offered from the next turn on.
        self.tool_search = tool_search
        self.tools: dict[str, Tool] = {}
        self.tool_specs: list[dict[str, Any]] = []
        self._offer([tool_search.tool, *tools] if tool_search else tools)
        self.system_prompt = system_prompt
        self.max_steps = max_steps
        self.should_stop = should_stop

    def _offer(self, tools: list[Tool]) -> None:
        for tool in tools:
            if tool.name not in self.tools:
                self.tools[tool.name] = tool
                self.tool_specs.append(tool.openai_spec())

    def _check_cancel(self) -> None:
        if self.should_stop():
            raise RunCancelled()

    def run(self, user_input: str) -> Outcome:
        messages: list[dict[str, Any]] = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        messages.append({"role": "user", "content": user_input})

        # Each model call stores only the messages added since the previous one (the
        # whole conversation each time would grow a long trace quadratically);
        # traces.selectors.model_call_conversation puts the whole back together.
        sent, previous_seq = 0, None
        for _turn in range(self.max_steps):
            self._check_cancel()
            started = timezone.now()
            new_input = {
                "messages": messages[sent:],
                "earlier_messages": sent,
                "earlier_from_step": previous_seq,
            }
            try:
                reply = self.backend.complete(messages, self.tool_specs)
            except ModelError as exc:
                step_record(
                    trace_id=self.trace_id,
                    kind=Step.Kind.ERROR,
                    name="model_error",
                    input=new_input,
                    error=str(exc),
                    started_at=started,
                )
                return Outcome(Trace.Status.FAILED, error=f"model call failed: {exc}")
            model_step = step_record(
                trace_id=self.trace_id,
                kind=Step.Kind.MODEL_CALL,
                name=reply.model or "model",
                input={**new_input, "tools": [t["function"]["name"] for t in self.tool_specs]},
                output=reply.as_output(),
                started_at=started,
                ended_at=timezone.now(),
                prompt_tokens=reply.prompt_tokens,
                completion_tokens=reply.completion_tokens,
            )
            sent, previous_seq = len(messages), model_step.seq
            messages.append(reply.as_message())
            if not reply.tool_calls:
                step_record(
                    trace_id=self.trace_id,
                    kind=Step.Kind.FINAL,
                    name="answer",
                    output={"content": reply.content},
                    parent=model_step,
                )
                return Outcome(Trace.Status.SUCCEEDED, output=reply.content)
            # Parallel calls of one turn are siblings under the model call.
            for call in reply.tool_calls:
                self._check_cancel()
                messages.append(
                    {
                        "role": "tool",
                        "tool_call_id": call.id,
                        "content": self._run_call(call, model_step),
                    }
                )
        return Outcome(
            Trace.Status.FAILED, error=f"no final answer within {self.max_steps} model turns"
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
        schema_meta = {"schema": tool.parameters} if tool else None
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
            step_record(
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
            return json.dumps({"error": message})

        if tool is None:
            known = ", ".join(sorted(self.tools)) or "none"
            return error(
                "unknown_tool", f"there is no tool named {call.name!r}; available tools: {known}"
            )
        if parse_error is not None:
            return error("invalid_arguments", str(parse_error))
        started = timezone.now()
        try:
            if self.tool_search is not None and tool is self.tool_search.tool:
                result, found = self.tool_search.call(arguments)
                self._offer(found)
            else:
                result = tool_execute(tool=tool, arguments=arguments)
        except ToolArgumentsError as exc:
            return error("invalid_arguments", str(exc), started)
        except ToolExecutionError as exc:
            return error("tool_error", f"{call.name} failed: {exc}", started)
        step_record(
            trace_id=self.trace_id,
            kind=Step.Kind.TOOL_RESULT,
            name=call.name,
            input=arguments,
            output=result,
            parent=call_step,
            tool_call_id=call.id,
            started_at=started,
            ended_at=timezone.now(),
        )
        return json.dumps(result, default=str)
