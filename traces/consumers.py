"""Live steps over a websocket: one consumer per trace, one for the trace list.

``/ws/traces/<id>/?after=N`` first sends every saved step with ``seq > N``, then each
new step as it is committed. Steps go out strictly in order, each exactly once: the
consumer keeps a cursor, drops anything at or below it, and fills any gap from the
database before sending. A browser that reconnects passes its cursor as ``after``.

By default messages are HTML fragments with ``hx-swap-oob`` for the htmx ws extension;
``?format=json`` gives JSON for programs (the SDK, the latency benchmark).
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

from .broadcast import TRACE_LIST_GROUP, trace_group
from .models import Trace
from .rendering import step_live_html
from .selectors import steps_after, trace_get_for_user
from .services import step_payload, trace_payload

logger = logging.getLogger(__name__)

CATCH_UP_BATCH = 200
LIVE_EVENTS = {
    "step.created": "step_created",
    "trace.updated": "trace_updated",
    "trace.listed": "trace_listed",
    "label.changed": "label_changed",
}


class _AuthenticatedConsumer(AsyncWebsocketConsumer):
    async def dispatch(self, message: dict) -> None:
        # Channels closes stale database connections before every handler, a thread hop
        # per message per socket. Live events touch the database only through
        # database_sync_to_async (a gap to fill), which does that clean-up itself.
        if message["type"] in LIVE_EVENTS:
            await getattr(self, LIVE_EVENTS[message["type"]])(message)
        else:
            await super().dispatch(message)

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
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self._catch_up()
        await self._send_trace_state()

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def _catch_up(self, upto: int | None = None) -> None:
        while True:
            batch = await database_sync_to_async(self._load_batch)()
            if not batch:
                return
            await self._send_steps(batch)
            if len(batch) < CATCH_UP_BATCH or (upto is not None and self.cursor >= upto):
                return

    async def _send_trace_state(self) -> None:
        """The trace's status as it is now. Status changes are broadcast once, so a socket
        that was away when the run ended would otherwise show "running" for ever."""
        await self.send(text_data=await database_sync_to_async(self._render_trace_state)())

    def _render_trace_state(self) -> str:
        trace = Trace.objects.get(pk=self.trace_id)
        if self.as_json:
            return json.dumps({"type": "trace", "trace": trace_payload(trace)})
        return render_to_string("traces/_trace_status_oob.html", {"trace": trace})

    def _load_batch(self) -> list[tuple[int, dict, str]]:
        steps = steps_after(trace_id=self.trace_id, after=self.cursor, limit=CATCH_UP_BATCH)
        return [(s.seq, step_payload(s), "" if self.as_json else step_live_html(s)) for s in steps]

    async def _send_steps(self, batch: list[tuple[int, dict, str]]) -> None:
        if self.as_json:
            await self.send(
                text_data=json.dumps({"type": "steps", "steps": [p for _, p, _ in batch]})
            )
        else:
            await self.send(text_data="".join(html for _, _, html in batch))
        self.cursor = batch[-1][0]

    async def step_created(self, event: dict) -> None:
        seq = event["seq"]
        if seq <= self.cursor:
            return
        if seq > self.cursor + 1:
            await self._catch_up(upto=seq)
            return
        await self.send(text_data=event["json"] if self.as_json else event["html"])
        self.cursor = seq

    async def label_changed(self, event: dict) -> None:
        """A step's labels changed: the redrawn labels (or their JSON)."""
        await self.send(text_data=event["json"] if self.as_json else event["html"])

    async def trace_updated(self, event: dict) -> None:
        # Pub/sub delivers at most once: a lost step message shows only as a gap before
        # the next one, and the run's last step has no next one but this status change.
        if event["trace"].get("step_count", 0) > self.cursor:
            await self._catch_up()
        if self.as_json:
            await self.send(text_data=json.dumps({"type": "trace", "trace": event["trace"]}))
        else:
            await self.send(text_data=event["html"])


class TraceListConsumer(_AuthenticatedConsumer):
    """Status changes and new traces for the trace list page."""

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
        self.first_page = query.get("page", "1") in ("", "1")
        await self.channel_layer.group_add(TRACE_LIST_GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(TRACE_LIST_GROUP, self.channel_name)

    async def _forward(self, event: dict) -> None:
        if self.as_json:
            await self.send(text_data=json.dumps({"type": "trace", "trace": event["trace"]}))
        else:
            await self.send(text_data=event["html"])

    async def trace_updated(self, event: dict) -> None:
        await self._forward(event)

    async def trace_listed(self, event: dict) -> None:
        trace = event["trace"]
        if not self.first_page:
            return
        if self.status_filter and trace["status"] != self.status_filter:
            return
        if self.agent_filter and trace["agent_slug"] != self.agent_filter:
            return
        await self._forward(event)
