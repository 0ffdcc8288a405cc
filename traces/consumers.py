"""Live steps over a websocket: one consumer per trace, one for the trace list.

``/ws/traces/<id>/?after=N`` first sends every saved step with ``seq > N`` (in frames of
bounded size), the calls in progress, and the trace's state; then each new event as it
is committed. Steps go out strictly in order, each exactly once: the consumer keeps a
cursor, drops anything at or below it, and fills any gap from the database before
sending. A browser that reconnects passes its cursor as ``after``.

Events reach the sockets through this process's hub (``traces.fanout``), one channel
layer subscription per process. By default messages are HTML fragments with
``hx-swap-oob`` for the htmx ws extension; ``?format=json`` gives JSON for programs
(see ``docs/events.md``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.template.loader import render_to_string

from tooltrail.api import bearer_token
from tooltrail.params import int_param
from tooltrail.services import api_token_authenticate
from tooltrail.ws_auth import WsCredential, ws_credential_valid
from tooltrail.ws_broadcast import daphne_socket

from .broadcast import TRACE_LIST_GROUP, trace_group
from .events import CALL_ENDED, CALL_STARTED, LABEL, STEP, TRACE
from .fanout import FRAME_BYTES, Batch, Event, hub_for
from .models import Trace
from .rendering import call_started_html, step_weight, steps_append_html
from .selectors import calls_in_progress, steps_after, steps_for_tree, trace_get_for_user
from .serializers import step_payload, trace_payload

logger = logging.getLogger(__name__)

CATCH_UP_BATCH = 200  # steps read per query


class _AuthenticatedConsumer(AsyncWebsocketConsumer):
    """A socket fed by the process's hub: ``deliver`` queues events, and one task per
    socket handles them in order (catch-ups from the database included)."""

    group = ""
    socket = None  # the Daphne socket, once accepted (tooltrail.ws_broadcast)

    async def _user(self):
        user = self.scope.get("user")
        if user is not None and user.is_authenticated:
            session = self.scope.get("session")
            self.credential = WsCredential.of_session(
                user=user, session_key=getattr(session, "session_key", None)
            )
            return user
        headers = {
            k.decode("latin-1").lower(): v.decode("latin-1")
            for k, v in self.scope.get("headers", [])
        }
        token = bearer_token(headers)
        if token:
            user = await database_sync_to_async(api_token_authenticate)(raw=token)
            if user is not None:
                self.credential = WsCredential.of_token(user=user, raw=token)
            return user
        return None

    # The login a socket was opened with is checked again while it stays open: a user
    # who logs out, or whose token is revoked or expires, stops receiving within
    # TOOLTRAIL_WS_REAUTH_SECONDS (see tooltrail.ws_auth).
    async def accept(self, subprotocol=None, headers=None) -> None:
        await super().accept(subprotocol, headers)
        # Where this is a Daphne socket, live frames built once for all sockets are
        # written to it directly (tooltrail.ws_broadcast).
        self.socket = daphne_socket(self.base_send)
        if getattr(self, "credential", None) is not None:
            self._reauth = asyncio.ensure_future(self._reauth_loop())

    async def _reauth_loop(self) -> None:
        while True:
            await asyncio.sleep(settings.TOOLTRAIL_WS_REAUTH_SECONDS)
            try:
                valid = await database_sync_to_async(ws_credential_valid)(self.credential)
            except Exception:  # noqa: BLE001 - the database is away: ask again next time
                logger.exception("could not re-check a websocket's login")
                continue
            if not valid:
                await self.close(code=4401)
                return

    async def websocket_disconnect(self, message) -> None:
        task = getattr(self, "_reauth", None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await super().websocket_disconnect(message)

    def _query(self) -> dict[str, str]:
        # Browsers send UTF-8; anything else is read with replacement characters rather
        # than failing the handshake with a traceback.
        raw = self.scope.get("query_string", b"")
        parsed = parse_qs(raw.decode("utf-8", "replace")[:4096])
        return {k: v[-1] for k, v in parsed.items()}

    async def _join(self) -> None:
        """Join the hub with delivery held back: what arrives meanwhile waits in the
        backlog until ``_release``."""
        self.backlog: list[Event] = []
        self.busy = True
        self.hub = hub_for(self.channel_layer)
        await self.hub.join(self.group, self)

    def _release(self) -> None:
        self.busy = False
        if self.backlog:
            self._start_drain()

    async def disconnect(self, code: int) -> None:
        if getattr(self, "hub", None) is not None:
            await self.hub.leave(self.group, self)

    async def deliver(self, batch: Batch) -> None:
        self.backlog.extend(batch.events)
        if not self.busy:
            self._start_drain()

    def _start_drain(self) -> None:
        self.busy = True
        asyncio.ensure_future(self._drain())

    async def _drain(self) -> None:
        try:
            while self.backlog:
                event = self.backlog.pop(0)
                await self.handle(event)
        except Exception:  # noqa: BLE001 - a closed socket; the client reconnects with its cursor
            logger.exception("a websocket of %s failed", self.group)
            self.backlog.clear()
        finally:
            self.busy = False

    async def handle(self, event: Event) -> None:
        raise NotImplementedError


class TraceConsumer(_AuthenticatedConsumer):
    async def connect(self) -> None:
        user = await self._user()
        if user is None:
            await self.close(code=4401)
            return
        try:
            self.trace_id = uuid.UUID(str(self.scope["url_route"]["kwargs"]["trace_id"]))
        except ValueError:
            await self.close(code=4404)
            return
        query = self._query()
        self.as_json = query.get("format") == "json"
        # A cursor that is not a plain number in range starts from the beginning.
        self.cursor = int_param(query.get("after"), default=0) or 0
        try:
            await database_sync_to_async(trace_get_for_user)(user=user, trace_id=self.trace_id)
        except Trace.DoesNotExist:
            await self.close(code=4404)
            return
        self.group = trace_group(self.trace_id)
        # Join first, then read: a step committed in between arrives twice (once from
        # the read, once live) and the cursor drops the second; none is missed.
        await self._join()
        await self.accept()
        try:
            # One trip to the database thread for the whole greeting: with many sockets
            # connecting at once, each trip waits behind everyone else's.
            frames, complete = await database_sync_to_async(self._greeting)()
            for frame in frames:
                await self.send(text_data=frame)
            if not complete:  # a long trace: the rest of its steps, frame by frame
                await self._catch_up()
                for frame in await database_sync_to_async(self._state)():
                    await self.send(text_data=frame)
        finally:
            self._release()

    async def deliver(self, batch: Batch) -> None:
        # The hot path: the whole batch follows this socket's cursor, so the frame the
        # hub built (and encoded) once goes out as it is.
        if (
            not self.busy
            and batch.simple
            and (batch.first is None or batch.first == self.cursor + 1)
        ):
            for frame, last in batch.frames(as_json=self.as_json):
                if not frame.write(self.socket):
                    await self.send(text_data=frame.text)
                if last is not None:  # a later frame that fails is filled from here
                    self.cursor = last
            return
        await super().deliver(batch)

    async def handle(self, event: Event) -> None:
        if event.type == STEP:
            if event.seq <= self.cursor:
                return
            if event.seq > self.cursor + 1:
                await self._catch_up(upto=event.seq)
                ended = event.ended_frame(as_json=self.as_json)  # the step came from the database
                if ended:
                    await self.send(text_data=ended)
                return
            await self.send(text_data=event.frame(as_json=self.as_json))
            self.cursor = event.seq
        elif event.type == TRACE:
            # Pub/sub delivers at most once: a lost step message shows only as a gap before
            # the next one, and the run's last step has no next one but this status change.
            trace = event.trace()
            if trace is not None and trace.step_count > self.cursor:
                await self._catch_up()
            if self.as_json:
                await self.send(text_data=event.trace_json())
            else:
                await self.send(text_data=event.trace_html("traces/_trace_status_oob.html"))
        elif event.type == LABEL:
            html, as_json = await event.label_frames()
            await self.send(text_data=as_json if self.as_json else html)
        elif event.type in (CALL_STARTED, CALL_ENDED):
            await self.send(text_data=event.json() if self.as_json else event.html())

    async def _catch_up(self, upto: int | None = None) -> None:
        while True:
            frames, last, count = await database_sync_to_async(self._load_frames)()
            for frame in frames:
                await self.send(text_data=frame)
            if last:
                self.cursor = last
            if count < CATCH_UP_BATCH or (upto is not None and self.cursor >= upto):
                return

    def _load_frames(self) -> tuple[list[str], int, int]:
        """The next steps after the cursor, as frames of at most FRAME_BYTES each."""
        # Pages need no model-call inputs for their rows (the bulk of a long trace).
        read = steps_after if self.as_json else steps_for_tree
        steps = read(trace_id=self.trace_id, after=self.cursor, limit=CATCH_UP_BATCH)
        frames: list[str] = []
        parts: list[str] = []
        group: list = []
        size = 0

        def flush() -> None:
            if self.as_json and parts:
                frames.append('{"type": "steps", "steps": [' + ", ".join(parts) + "]}")
            elif group:
                frames.append(steps_append_html(group))
            parts.clear()
            group.clear()

        for step in steps:
            part = json.dumps(step_payload(step), default=str) if self.as_json else ""
            weight = len(part) if self.as_json else step_weight(step)
            if (parts or group) and size + weight > FRAME_BYTES:
                flush()
                size = 0
            if self.as_json:
                parts.append(part)
            else:
                group.append(step)
            size += weight
        flush()
        return frames, (steps[-1].seq if steps else 0), len(steps)

    def _greeting(self) -> tuple[list[str], bool]:
        """The first frames: saved steps after the cursor (up to one read), then, if that
        was all of them, the calls in progress and the trace's state. Advances the
        cursor. Returns the frames and whether they are the whole greeting."""
        frames, last, count = self._load_frames()
        if last:
            self.cursor = last
        if count >= CATCH_UP_BATCH:
            return frames, False
        return [*frames, *self._state()], True

    def _state(self) -> list[str]:
        """The calls in progress and the trace's status as it is now (status changes are
        broadcast once: a socket away when the run ended would show "running" for ever)."""
        frames = []
        for call in calls_in_progress(trace_id=self.trace_id):
            event = {"type": CALL_STARTED, "trace": str(self.trace_id), "call": call}
            frames.append(json.dumps(event) if self.as_json else call_started_html(event))
        trace = Trace.objects.get(pk=self.trace_id)
        if self.as_json:
            frames.append(json.dumps({"type": "trace", "trace": trace_payload(trace)}))
        else:
            frames.append(render_to_string("traces/_trace_status_oob.html", {"trace": trace}))
        return frames


class TraceListConsumer(_AuthenticatedConsumer):
    """Status changes and new traces for the trace list page."""

    group = TRACE_LIST_GROUP

    async def connect(self) -> None:
        if await self._user() is None:
            await self.close(code=4401)
            return
        query = self._query()
        self.as_json = query.get("format") == "json"
        # What the page shows: a new run is announced only where it would be listed
        # (the first page, matching the filters).
        self.status_filter = query.get("status", "")
        self.agent_filter = query.get("agent", "")
        self.first_page = query.get("page", "1") in ("", "1") and not query.get("before")
        await self._join()
        await self.accept()
        self._release()

    async def handle(self, event: Event) -> None:
        if event.type != TRACE:
            return
        trace = event.trace()
        if trace is None:
            return
        if event.data.get("created"):
            if not self.first_page:
                return
            if self.status_filter and trace.status != self.status_filter:
                return
            if self.agent_filter and trace.agent_slug != self.agent_filter:
                return
        if self.as_json:
            await self.send(text_data=event.trace_json())
        else:
            await self.send(
                text_data=event.trace_html(
                    "traces/_trace_row_oob.html", created=bool(event.data.get("created"))
                )
            )
