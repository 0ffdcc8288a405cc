"""One channel-layer subscription per server process, fanned out to its sockets.

With a subscription per socket, every event was decoded, dispatched and encoded once per
socket: at 100 viewers of one trace that is the server's whole CPU. Here each process
subscribes once per group (``Hub.join``), decodes each event once, renders each frame
(HTML for pages, JSON for programs) once, and hands it to every local socket. Events
that have arrived together are sent together, one websocket frame per socket for the
lot, so a busy process catches up instead of falling further behind.

Events are checked here (known type, the group's own trace, whole-number seq) before
any socket sees them; pages get HTML rendered from the event's data or, for trace
status changes, from the database by the trace's id: never HTML from the channel layer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from typing import Any, Protocol

from django.template.loader import render_to_string

from tooltrail.ws_broadcast import SharedFrame

from .broadcast import TRACE_LIST_GROUP, trace_group
from .events import CALL_ENDED, LABEL, ROUTES, STEP, TRACE
from .models import Trace
from .rendering import EVENT_HTML, trace_from_payload
from .serializers import trace_payload

logger = logging.getLogger(__name__)

# A frame holds at most this much (or one bigger event): catch-ups are cut at it, and so
# are live batches, which Daphne would refuse whole over its 1 MiB message limit.
FRAME_BYTES = 256 * 1024


class Event:
    """One checked event with its frames, each built at most once per process."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.type: str = data["type"]
        self.seq: int | None = data["seq"] if self.type == STEP else None
        self._html: str | None = None
        self._json: str | None = None
        self._trace: Trace | None = None
        self._labels: asyncio.Future | None = None
        self._trace_html: dict[tuple, str] = {}

    @classmethod
    def check(cls, data: Any, *, group: str) -> Event | None:
        try:
            if not isinstance(data, dict) or data.get("type") not in ROUTES:
                raise ValueError(f"unknown event type {data.get('type')!r}")
            uuid.UUID(str(data["trace"]))
            if group not in (TRACE_LIST_GROUP, trace_group(data["trace"])):
                raise ValueError("an event for another trace")
            if data["type"] == STEP and (
                type(data.get("seq")) is not int or data["step"].get("seq") != data["seq"]
            ):
                raise ValueError("a step event without a whole-number seq")
            if data["type"] == LABEL and not (
                data.get("step_seq") is None or type(data.get("step_seq")) is int
            ):
                raise ValueError("a label event without a whole-number step_seq")
            return cls(data)
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            logger.warning("dropped a malformed event on %s: %s", group, exc)
            return None

    def json(self) -> str:
        if self._json is None:
            self._json = json.dumps(self.data, default=str)
        return self._json

    def ended_call(self) -> str | None:
        """The call in progress a step event also ends (``step_event(ended_call=)``)."""
        ended = self.data.get("ended_call") if self.type == STEP else None
        return ended if isinstance(ended, str) and ended else None

    def ended_json(self) -> str:
        return json.dumps(self._ended_event())

    def ended_frame(self, *, as_json: bool) -> str:
        """The ``call.ended`` a step event carries, alone ("" when it carries none): for a
        socket that took the step itself from the database."""
        if not self.ended_call():
            return ""
        return self.ended_json() if as_json else EVENT_HTML[CALL_ENDED](self._ended_event())

    def _ended_event(self) -> dict[str, Any]:
        return {"type": CALL_ENDED, "trace": self.data["trace"], "call": {"id": self.ended_call()}}

    def json_parts(self) -> list[str]:
        """The event for a program: itself, then the ``call.ended`` it carries, if any
        (programs see the same events as before the two were sent as one)."""
        return [self.json(), self.ended_json()] if self.ended_call() else [self.json()]

    def frame(self, *, as_json: bool) -> str:
        """The event alone as one websocket frame."""
        if not as_json:
            return self.html()
        return _json_frame(self.json_parts())

    def html(self) -> str:
        if self._html is None:
            self._html = EVENT_HTML[self.type](self.data)
        return self._html

    async def label_frames(self) -> tuple[str, str]:
        """(HTML, JSON) of the labels the event names, read once per process."""
        if self._labels is None:
            from channels.db import database_sync_to_async

            from .annotation_services import labels_frames

            self._labels = asyncio.ensure_future(
                database_sync_to_async(labels_frames)(
                    trace_id=self.data["trace"], step_seq=self.data.get("step_seq")
                )
            )
        return await self._labels

    def trace(self) -> Trace | None:
        """The trace as the event describes it (an unsaved, checked copy)."""
        if self._trace is None:
            try:
                self._trace = trace_from_payload(self.data["data"])
            except (KeyError, ValueError, TypeError, AttributeError):
                logger.warning("a trace event without a usable trace: %r", self.data.get("trace"))
                return None
        return self._trace

    def trace_json(self) -> str:
        trace = self.trace()
        return json.dumps({"type": "trace", "trace": trace_payload(trace) if trace else None})

    def trace_html(self, template: str, **context: Any) -> str:
        key = (template, *sorted(context.items()))
        if key not in self._trace_html:
            trace = self.trace()
            self._trace_html[key] = (
                render_to_string(template, {"trace": trace, **context}) if trace else ""
            )
        return self._trace_html[key]


def _json_frame(parts: list[str]) -> str:
    """One event as it is; several as ``{"type": "events", "events": [...]}``."""
    if len(parts) == 1:
        return parts[0]
    return '{"type": "events", "events": [' + ", ".join(parts) + "]}"


class Batch:
    """Events of one group that arrived together; its combined frames are shared."""

    def __init__(self, events: list[Event]) -> None:
        self.events = events
        seqs = [e.seq for e in events if e.seq is not None]
        # Sendable as it is to a socket whose cursor is ``first - 1``: step numbers
        # run on without a gap, and nothing in it needs the database.
        # Trace and label events need more than the event (a check, a database read).
        self.simple = all(e.type not in (TRACE, LABEL) for e in events) and (
            not seqs or seqs == list(range(seqs[0], seqs[0] + len(seqs)))
        )
        self.first = seqs[0] if seqs else None
        self._frames: dict[bool, list[tuple[SharedFrame, int | None]]] = {}

    def frames(self, *, as_json: bool) -> list[tuple[SharedFrame, int | None]]:
        """The batch as frames of at most FRAME_BYTES (one, unless it is big), each
        encoded once for every socket that takes the batch whole, with the last step
        number each carries (None: no step). An event is never cut: a step and the call
        it ends stay in one frame."""
        if as_json not in self._frames:
            frames: list[tuple[SharedFrame, int | None]] = []
            chunk: list[str] = []
            size = 0
            last: int | None = None

            def flush() -> None:
                text = _json_frame(chunk) if as_json else "".join(chunk)
                frames.append((SharedFrame(text), last))

            for event in self.events:
                parts = event.json_parts() if as_json else [event.html()]
                weight = sum(len(part) for part in parts)
                if chunk and size + weight > FRAME_BYTES:
                    flush()
                    chunk, size, last = [], 0, None
                chunk.extend(parts)
                size += weight
                last = event.seq if event.seq is not None else last
            if chunk:
                flush()
            self._frames[as_json] = frames
        return self._frames[as_json]


class Member(Protocol):
    async def deliver(self, batch: Batch) -> None: ...


class Hub:
    """This process's subscriptions (one per group with local sockets)."""

    def __init__(self, layer) -> None:
        self.layer = layer
        self.members: dict[str, set[Member]] = {}
        self.receivers: dict[str, tuple[str, asyncio.Task]] = {}
        self.queue: asyncio.Queue[tuple[str, dict]] = asyncio.Queue()
        self.lock = asyncio.Lock()
        self.fanout_task = asyncio.ensure_future(self._fan_out())

    async def join(self, group: str, member: Member) -> None:
        """Return once events sent to ``group`` from now on reach ``member``."""
        async with self.lock:
            self.members.setdefault(group, set()).add(member)
            if group not in self.receivers:
                channel = await self.layer.new_channel(prefix="hub.")
                await self.layer.group_add(group, channel)
                task = asyncio.ensure_future(self._receive(group, channel))
                self.receivers[group] = (channel, task)

    async def leave(self, group: str, member: Member) -> None:
        async with self.lock:
            members = self.members.get(group, set())
            members.discard(member)
            if members or group not in self.receivers:
                return
            del self.members[group]
            channel, task = self.receivers.pop(group)
            task.cancel()
            await self.layer.group_discard(group, channel)

    async def _receive(self, group: str, channel: str) -> None:
        while True:
            try:
                message = await self.layer.receive(channel)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - Redis went away: retry; sockets fill gaps by cursor
                logger.exception("receiving events of %s failed; retrying", group)
                await asyncio.sleep(1)
                continue
            self.queue.put_nowait((group, message))

    async def _fan_out(self) -> None:
        while True:
            arrived = [await self.queue.get()]
            while not self.queue.empty():
                arrived.append(self.queue.get_nowait())
            by_group: dict[str, list[Event]] = {}
            for group, message in arrived:
                event = Event.check(message, group=group)
                if event is not None:
                    by_group.setdefault(group, []).append(event)
            for group, events in by_group.items():
                batch = Batch(events)
                for member in list(self.members.get(group, ())):
                    try:
                        await member.deliver(batch)
                    except Exception:  # noqa: BLE001 - one broken socket must not stop the rest
                        logger.exception("delivery to a socket of %s failed", group)


_hubs: dict[int, Hub] = {}


def hub_for(layer) -> Hub:
    """The hub of this event loop (one per server process)."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(id(loop))
    if hub is None or hub.layer is not layer or hub.fanout_task.done():
        hub = _hubs[id(loop)] = Hub(layer)
    return hub
