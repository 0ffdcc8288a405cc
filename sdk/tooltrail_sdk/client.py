"""The recorder: spans in a context variable, sent as OTLP/JSON by a background thread."""

from __future__ import annotations

import contextvars
import functools
import inspect
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx

logger = logging.getLogger("tooltrail_sdk")
SDK_NAME = "tooltrail-sdk"
SDK_VERSION = "0.1.0"
STATUS_OK, STATUS_ERROR = 1, 2
SPAN_KIND_INTERNAL, SPAN_KIND_CLIENT = 1, 3

_current: contextvars.ContextVar[Span | None] = contextvars.ContextVar(
    "tooltrail_span", default=None
)


def _json(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    return {"stringValue": value if isinstance(value, str) else _json(value)}


def _genai_messages(messages: list[dict[str, Any]]) -> str:
    """OpenAI-style messages in the GenAI convention's ``role`` + ``parts`` shape."""
    out = []
    for message in messages:
        parts: list[dict[str, Any]] = []
        if message.get("role") == "tool":
            parts.append(
                {
                    "type": "tool_call_response",
                    "id": message.get("tool_call_id", ""),
                    "response": message.get("content", ""),
                }
            )
        elif message.get("content"):
            parts.append({"type": "text", "content": message["content"]})
        for call in message.get("tool_calls") or []:
            function = call.get("function") or call
            parts.append(
                {
                    "type": "tool_call",
                    "id": call.get("id", ""),
                    "name": function.get("name", ""),
                    "arguments": function.get("arguments", ""),
                }
            )
        out.append({"role": message.get("role", "user"), "parts": parts})
    return json.dumps(out, default=str)


class Span:
    """One recorded operation (a trace's root, a model call or a tool call)."""

    def __init__(
        self,
        recorder: Tooltrail,
        name: str,
        *,
        parent: Span | None,
        attributes: dict[str, Any],
        kind: int = SPAN_KIND_INTERNAL,
    ) -> None:
        self.recorder = recorder
        self.name = name
        self.parent = parent
        self.trace_id = parent.trace_id if parent else os.urandom(16).hex()
        self.span_id = os.urandom(8).hex()
        self.kind = kind
        self.attributes: dict[str, Any] = dict(attributes)
        self.start_ns = time.time_ns()
        self.end_ns = 0
        self.status: dict[str, Any] = {}
        self.events: list[dict[str, Any]] = []

    # --- what the caller records -------------------------------------------------
    def set(self, key: str, value: Any) -> None:
        """Set any attribute (kept by Tooltrail as it is)."""
        if value is not None:
            self.attributes[key] = value

    def output(self, content: Any = None, *, tool_calls: list[dict] | None = None) -> None:
        """A model call's reply (text and/or tool calls), or a trace's final output."""
        if self.attributes.get("gen_ai.operation.name") == "chat":
            message: dict[str, Any] = {"role": "assistant", "content": content or ""}
            if tool_calls:
                message["tool_calls"] = tool_calls
            self.set("gen_ai.output.messages", _genai_messages([message]))
        else:
            self.set("output.value", _json(content))

    def result(self, value: Any) -> None:
        """A tool call's result."""
        self.set("gen_ai.tool.call.result", _json(value))

    def usage(self, *, input_tokens: int = 0, output_tokens: int = 0) -> None:
        self.set("gen_ai.usage.input_tokens", int(input_tokens))
        self.set("gen_ai.usage.output_tokens", int(output_tokens))

    def fail(self, error: BaseException | str) -> None:
        message = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        self.status = {"code": STATUS_ERROR, "message": message}
        if isinstance(error, BaseException):
            self.events.append(
                {
                    "timeUnixNano": str(time.time_ns()),
                    "name": "exception",
                    "attributes": [
                        {"key": "exception.type", "value": _value(type(error).__name__)},
                        {"key": "exception.message", "value": _value(str(error))},
                    ],
                }
            )

    # --- OTLP/JSON ------------------------------------------------------------------
    def to_otlp(self) -> dict[str, Any]:
        span: dict[str, Any] = {
            "traceId": self.trace_id,
            "spanId": self.span_id,
            "name": self.name,
            "kind": self.kind,
            "startTimeUnixNano": str(self.start_ns),
            "endTimeUnixNano": str(self.end_ns or time.time_ns()),
            "attributes": [{"key": k, "value": _value(v)} for k, v in self.attributes.items()],
        }
        if self.parent:
            span["parentSpanId"] = self.parent.span_id
        if self.status:
            span["status"] = self.status
        if self.events:
            span["events"] = self.events
        return span


class Tooltrail:
    """Records spans and sends them to ``{url}/v1/traces`` with an API token.

    Spans are sent by a background thread in batches, at the latest ``interval``
    seconds after they end (so a long trace shows live) and at once when a trace's
    root ends. ``flush()`` waits until everything recorded has been sent; ``close()``
    flushes and stops the thread. Sending never raises into the agent: a failure is
    logged and counted in ``failed_spans``, and answers 429/503 are retried.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str,
        service: str = "python-agent",
        interval: float = 0.5,
        timeout: float = 10.0,
        max_batch: int = 512,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.endpoint = url.rstrip("/") + "/v1/traces"
        self.service = service
        self.interval = interval
        self.max_batch = max_batch
        self.failed_spans = 0
        self.sent_spans = 0
        self._http = httpx.Client(
            timeout=timeout,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            transport=transport,
        )
        self._queue: queue.Queue[Span | None] = queue.Queue()
        self._wake = threading.Event()
        self._pending = 0
        self._idle = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="tooltrail-sdk", daemon=True)
        self._thread.start()

    # --- recording --------------------------------------------------------------------
    @contextmanager
    def span(
        self, name: str, *, attributes: dict[str, Any] | None = None, kind: int = SPAN_KIND_INTERNAL
    ) -> Iterator[Span]:
        """Record any operation as a span under the current one."""
        parent = _current.get()
        span = Span(self, name, parent=parent, attributes=attributes or {}, kind=kind)
        if parent is None:
            # The outermost span completes the trace (Tooltrail closes it on arrival).
            span.set("tooltrail.trace.final", True)
        token = _current.set(span)
        try:
            yield span
        except BaseException as exc:
            span.fail(exc)
            raise
        finally:
            _current.reset(token)
            span.end_ns = time.time_ns()
            self._enqueue(span, urgent=parent is None)

    @contextmanager
    def trace(self, name: str, *, input: Any = None, agent: str | None = None) -> Iterator[Span]:
        """A whole agent run (an ``invoke_agent`` span): everything recorded inside it
        belongs to this trace."""
        attributes = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": agent or name}
        if input is not None:
            attributes["input.value"] = _json(input)
        with self.span(name, attributes=attributes) as span:
            yield span

    @contextmanager
    def model_call(
        self,
        model: str,
        *,
        messages: list[dict[str, Any]] | None = None,
        provider: str | None = None,
        **attributes: Any,
    ) -> Iterator[Span]:
        """A model call (a GenAI ``chat`` span): pass the messages sent; record the
        reply with ``span.output(...)`` and tokens with ``span.usage(...)``."""
        attrs: dict[str, Any] = {"gen_ai.operation.name": "chat", "gen_ai.request.model": model}
        if provider:
            attrs["gen_ai.provider.name"] = provider
        if messages is not None:
            attrs["gen_ai.input.messages"] = _genai_messages(messages)
        attrs.update(attributes)
        with self.span(f"chat {model}", attributes=attrs, kind=SPAN_KIND_CLIENT) as span:
            yield span

    @contextmanager
    def tool_call(
        self, name: str, *, arguments: Any = None, call_id: str | None = None
    ) -> Iterator[Span]:
        """A tool call (a GenAI ``execute_tool`` span); record its result with
        ``span.result(...)``. An exception marks it failed and propagates."""
        attrs: dict[str, Any] = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name}
        if arguments is not None:
            attrs["gen_ai.tool.call.arguments"] = _json(arguments)
        if call_id:
            attrs["gen_ai.tool.call.id"] = call_id
        with self.span(f"execute_tool {name}", attributes=attrs) as span:
            yield span

    def tool(self, func: Callable | None = None, *, name: str | None = None) -> Callable:
        """Decorator: every call of ``func`` is recorded as a tool call with its
        arguments and its return value (or its exception)."""

        def wrap(f: Callable) -> Callable:
            tool_name = name or f.__name__
            signature = inspect.signature(f)

            def arguments(args, kwargs) -> dict[str, Any]:
                try:
                    bound = signature.bind(*args, **kwargs)
                except TypeError:
                    return {"args": list(args), "kwargs": kwargs}
                bound.apply_defaults()
                return dict(bound.arguments)

            if inspect.iscoroutinefunction(f):

                @functools.wraps(f)
                async def async_wrapper(*args, **kwargs):
                    with self.tool_call(tool_name, arguments=arguments(args, kwargs)) as span:
                        value = await f(*args, **kwargs)
                        span.result(value)
                        return value

                return async_wrapper

            @functools.wraps(f)
            def wrapper(*args, **kwargs):
                with self.tool_call(tool_name, arguments=arguments(args, kwargs)) as span:
                    value = f(*args, **kwargs)
                    span.result(value)
                    return value

            return wrapper

        return wrap(func) if func is not None else wrap

    # --- sending ------------------------------------------------------------------------
    def _enqueue(self, span: Span, *, urgent: bool) -> None:
        with self._idle:
            self._pending += 1
        self._queue.put(span)
        if urgent:
            self._wake.set()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            self._wake.wait(self.interval)
            self._wake.clear()
            batch: list[Span] = []
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    continue
                batch.append(item)
                if len(batch) >= self.max_batch:
                    self._send(batch)
                    batch = []
            if batch:
                self._send(batch)

    def _send(self, spans: list[Span]) -> None:
        body = {
            "resourceSpans": [
                {
                    "resource": {
                        "attributes": [
                            {"key": "service.name", "value": _value(self.service)},
                            {"key": "telemetry.sdk.name", "value": _value(SDK_NAME)},
                            {"key": "telemetry.sdk.version", "value": _value(SDK_VERSION)},
                        ]
                    },
                    "scopeSpans": [
                        {
                            "scope": {"name": "tooltrail_sdk", "version": SDK_VERSION},
                            "spans": [s.to_otlp() for s in spans],
                        }
                    ],
                }
            ]
        }
        try:
            for attempt in range(5):
                response = self._http.post(self.endpoint, content=json.dumps(body))
                if response.status_code in (429, 502, 503, 504) and attempt < 4:
                    time.sleep(min(float(response.headers.get("retry-after") or 1), 5.0))
                    continue
                break
            if response.status_code != 200:
                raise RuntimeError(f"HTTP {response.status_code}: {response.text[:300]}")
            rejected = int(response.json().get("partialSuccess", {}).get("rejectedSpans") or 0)
            self.sent_spans += len(spans) - rejected
            self.failed_spans += rejected
        except Exception as exc:  # noqa: BLE001 - recording must never break the agent
            self.failed_spans += len(spans)
            logger.warning("tooltrail: could not send %d spans: %s", len(spans), exc)
        finally:
            with self._idle:
                self._pending -= len(spans)
                self._idle.notify_all()

    def flush(self, timeout: float = 30.0) -> bool:
        """Send everything recorded so far; True when it all went (or failed) in time."""
        self._wake.set()
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def close(self, timeout: float = 30.0) -> None:
        self.flush(timeout)
        self._queue.put(None)
        self._wake.set()
        self._thread.join(timeout)
        self._http.close()

    def __enter__(self) -> Tooltrail:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
