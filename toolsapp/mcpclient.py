"""Sessions to MCP servers, kept open and reused by every call in this process.

One event-loop thread per process (started on first use, started again in a forked
child) holds one session per server: a long-lived task enters the SDK's ``Client`` and
keeps it open, and calls from any thread are run on that loop with a deadline. A call
that overruns, or a server that crashed, hung or answered garbage, closes that session
(its stdio process is stopped); the next call opens a fresh one.

``notifications/tools/list_changed`` from a server calls the ``on_tools_changed``
hook (``toolsapp.mcpservers`` sets it to re-sync that server).

Uses the official ``mcp`` SDK in its ``legacy`` mode (the initialize handshake every
server speaks; its notifications arrive on the session).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shlex
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import mcp_types
from mcp import Client, StdioServerParameters

from .executors.base import ToolCancelled, ToolExecutionError, ToolTimeout

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.05
MAX_LIST_PAGES = 100


class McpError(ToolExecutionError):
    """An MCP server could not be reached, or failed, or answered something unusable."""


@dataclass(frozen=True)
class ServerSpec:
    """How to reach one server: what the session key is made of (a changed command or
    URL is a different session)."""

    name: str
    command: str = ""
    url: str = ""
    env: tuple[tuple[str, str], ...] = ()

    def describe(self) -> str:
        return f"MCP server {self.name!r}"

    def client(self, handler: Callable[[Any], Awaitable[None]]) -> Client:
        if self.url:
            target: Any = self.url
        else:
            try:
                argv = shlex.split(self.command)
            except ValueError as exc:
                raise McpError(f"{self.describe()}: its command cannot be parsed: {exc}") from exc
            if not argv:
                raise McpError(f"{self.describe()} has no command and no URL")
            target = StdioServerParameters(command=argv[0], args=argv[1:], env=dict(self.env))
        return Client(target, mode="legacy", cache=None, message_handler=handler)


@dataclass
class _Session:
    spec: ServerSpec
    ready: asyncio.Future
    closing: asyncio.Event = field(default_factory=asyncio.Event)
    client: Client | None = None
    task: asyncio.Task | None = None
    # The owner task's anyio scope: cancelling it (not the task) lets the SDK's shielded
    # shutdown stop the server process; a native task.cancel() can cut that short.
    scope: anyio.CancelScope | None = None

    def stop_connecting(self) -> None:
        if self.scope is not None:
            self.scope.cancel()
        elif self.task is not None:
            self.task.cancel()


ToolsChanged = Callable[[str], None]


class McpSessions:
    """The process's MCP sessions. Thread-safe; every public method has a deadline."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sessions: dict[ServerSpec, _Session] = {}
        self.on_tools_changed: ToolsChanged | None = None

    # --- the loop thread ---------------------------------------------------------------

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._pid != os.getpid():
                # First use, or a forked child: the parent's loop thread is not here.
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="mcp-sessions", daemon=True)
                thread.start()
                self._loop, self._pid, self._sessions = loop, os.getpid(), {}
            return self._loop

    def _run(
        self,
        coro_fn: Callable[[], Awaitable[Any]],
        *,
        timeout: float,
        cancel: threading.Event | None,
        what: str,
        spec: ServerSpec | None = None,
    ) -> Any:
        loop = self._ensure_loop()
        future = asyncio.run_coroutine_threadsafe(coro_fn(), loop)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                return future.result(timeout=max(0.0, min(POLL_SECONDS, left)))
            except TimeoutError:
                pass
            if cancel is not None and cancel.is_set():
                self._abandon(loop, future, spec)
                raise ToolCancelled(f"{what} was cancelled")
            if time.monotonic() >= deadline:
                self._abandon(loop, future, spec)
                raise ToolTimeout(f"{what} did not answer within {timeout:g} s")

    def _abandon(
        self, loop: asyncio.AbstractEventLoop, future: Any, spec: ServerSpec | None
    ) -> None:
        """Stop waiting for a request. Its session may be stuck: it is taken out of use
        first (the loop runs callbacks in order, so no later call can pick it up)."""
        if spec is not None:
            loop.call_soon_threadsafe(self._forget, spec)
        future.cancel()

    # --- sessions ----------------------------------------------------------------------

    async def _hold(self, session: _Session) -> None:
        """Own one session for its whole life: enter the Client, serve, exit it (the
        SDK's task groups must be left from the task that entered them)."""
        spec = session.spec

        async def handler(message: Any) -> None:
            if isinstance(message, Exception):
                logger.warning("%s sent something unusable: %s", spec.describe(), message)
                return
            root = getattr(message, "root", message)
            if isinstance(root, mcp_types.ToolListChangedNotification) and self.on_tools_changed:
                hook = self.on_tools_changed
                threading.Thread(target=hook, args=(spec.name,), daemon=True).start()

        try:
            with anyio.CancelScope() as session.scope:
                client = spec.client(handler)
                async with client:
                    session.client = client
                    if not session.ready.done():
                        session.ready.set_result(client)
                    await session.closing.wait()
        except Exception as exc:  # noqa: BLE001 - handed to whoever waits
            if not session.ready.done():
                session.ready.set_exception(exc)
        except BaseException:
            if not session.ready.done():
                session.ready.cancel()
            raise
        finally:
            if not session.ready.done():  # stopped while connecting
                session.ready.cancel()
            if self._sessions.get(spec) is session:
                del self._sessions[spec]

    async def _session(self, spec: ServerSpec, connect_timeout: float) -> _Session:
        session = self._sessions.get(spec)
        if session is None:
            loop = asyncio.get_running_loop()
            session = _Session(spec=spec, ready=loop.create_future())
            self._sessions[spec] = session
            session.task = loop.create_task(self._hold(session))
        try:
            await asyncio.wait_for(asyncio.shield(session.ready), connect_timeout)
            return session
        except asyncio.CancelledError:
            # The caller gave up while it connected: a server stuck in its handshake
            # must not be left behind.
            if session.client is None:
                self._forget(spec, session)
                session.stop_connecting()
            raise
        except TimeoutError:
            await self._drop(session)
            raise ToolTimeout(
                f"{spec.describe()} did not finish connecting within {connect_timeout:g} s"
            ) from None
        except McpError:
            await self._drop(session)
            raise
        except Exception as exc:  # noqa: BLE001 - the SDK and transports raise many kinds
            await self._drop(session)
            raise McpError(
                f"{spec.describe()} could not be started or reached: {_why(exc)}"
            ) from exc

    def _forget(self, spec: ServerSpec, session: _Session | None = None) -> _Session | None:
        """Take a session out of use (``session``, or whichever ``spec`` has now) and
        tell its owner task to close it."""
        current = self._sessions.get(spec)
        if current is not None and (session is None or current is session):
            del self._sessions[spec]
        session = session or current
        if session is not None:
            session.closing.set()
        return session

    async def _drop(self, session: _Session) -> None:
        self._forget(session.spec, session)
        task = session.task
        if task is None or task is asyncio.current_task():
            return
        if session.client is None:  # still connecting: nothing to close politely
            session.stop_connecting()
        try:
            await asyncio.wait_for(asyncio.shield(task), 5)
        except BaseException:  # noqa: BLE001 - a stuck shutdown must not stick us
            # Not task.cancel(): that would cut the SDK's shielded shutdown short and leave
            # the server running (seen when the caller gave up while this waited).
            session.stop_connecting()

    async def _request(
        self, spec: ServerSpec, call: Callable[[Client], Awaitable[Any]], connect_timeout: float
    ) -> Any:
        session = await self._session(spec, connect_timeout)
        try:
            return await call(session.client)
        except (asyncio.CancelledError, TimeoutError):
            # A call that overran: the server may be stuck; start afresh next time.
            await self._drop(session)
            raise
        except Exception as exc:  # noqa: BLE001
            await self._drop(session)
            raise McpError(f"{spec.describe()} failed: {_why(exc)}") from exc

    # --- the two operations ------------------------------------------------------------

    def list_tools(self, spec: ServerSpec, *, timeout: float) -> list[dict[str, Any]]:
        """Every tool the server lists (all pages), as plain dicts."""

        async def call(client: Client) -> list[dict[str, Any]]:
            tools, cursor = [], None
            for _ in range(MAX_LIST_PAGES):
                page = await client.list_tools(cursor=cursor, cache_mode="bypass")
                tools.extend(
                    t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in page.tools
                )
                cursor = page.next_cursor
                if not cursor:
                    return tools
            raise McpError(f"{spec.describe()} listed more than {MAX_LIST_PAGES} pages of tools")

        return self._run(
            lambda: self._request(spec, call, timeout),
            timeout=timeout,
            cancel=None,
            what=f"{spec.describe()} (tools/list)",
            spec=spec,
        )

    def call_tool(
        self,
        spec: ServerSpec,
        *,
        name: str,
        arguments: dict[str, Any],
        timeout: float,
        cancel: threading.Event | None = None,
        max_bytes: int = 1 << 20,
    ) -> Any:
        """Call one tool; return its structured content, its text, or its content blocks.
        A result with ``isError`` raises McpError with the server's text."""

        async def call(client: Client) -> Any:
            result = await client.call_tool(name, arguments)
            return result.model_dump(mode="json", by_alias=True, exclude_none=True)

        raw = self._run(
            lambda: self._request(spec, call, timeout),
            timeout=timeout,
            cancel=cancel,
            what=f"{spec.describe()} (tools/call {name})",
            spec=spec,
        )
        return _result_value(raw, spec=spec, name=name, max_bytes=max_bytes)

    def close(self, spec: ServerSpec | None = None, *, timeout: float = 10) -> None:
        """Close one session (or all): their stdio processes are stopped."""
        if self._loop is None or self._pid != os.getpid():
            return
        specs = [spec] if spec else list(self._sessions)

        async def drop_all() -> None:
            for s in specs:
                session = self._sessions.get(s)
                if session is not None:
                    await self._drop(session)

        with contextlib.suppress(ToolExecutionError):
            self._run(drop_all, timeout=timeout, cancel=None, what="closing MCP sessions")

    def open_sessions(self) -> list[str]:
        return sorted(s.name for s in self._sessions)


def _why(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_why(e) for e in exc.exceptions)
    text = str(exc) or type(exc).__name__
    return text if len(text) < 500 else text[:500] + "…"


def _result_value(raw: dict[str, Any], *, spec: ServerSpec, name: str, max_bytes: int) -> Any:
    size = len(json.dumps(raw))
    if size > max_bytes:
        raise McpError(f"{spec.describe()}: the answer of {name} is {size} bytes, over {max_bytes}")
    blocks = raw.get("content") or []
    texts = [b.get("text", "") for b in blocks if b.get("type") == "text"]
    if raw.get("isError"):
        raise McpError(f"{name} failed on {spec.describe()}: {' '.join(texts) or 'no message'}")
    if raw.get("structuredContent") is not None:
        return raw["structuredContent"]
    if blocks and len(texts) == len(blocks):
        return texts[0] if len(texts) == 1 else texts
    return blocks


SESSIONS = McpSessions()
