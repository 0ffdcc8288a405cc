"""One websocket frame, built once, written to many sockets.

The ASGI way to send a text frame (``{"type": "websocket.send", "text": ...}``) makes
Daphne encode the text, autobahn build the frame around it (copying the payload) and log
it at debug level (its arguments are formatted even with logging off), for every socket.
At 100 viewers of a live trace that was most of the server's CPU: ~60 µs a frame.

A ``SharedFrame`` is encoded and framed once (autobahn's own ``PreparedMessage``, made for
broadcast); ``SharedFrame.write`` puts those bytes on the transport of each Daphne
socket, which is what autobahn's send does for an uncompressed frame with nothing queued.
Where the socket is not a plain Daphne one (a test communicator, another server, a
compressed or queued socket), ``write`` says so and the caller sends the ASGI way.

Twisted queues every write and sends it on the reactor's next turn: per frame, a writer
added to the event loop, a wakeup through its logging context, the send, the writer
removed (40 % of the server's CPU at 100 viewers). Where nothing is waiting to go out
on a plain TCP connection, the frame is sent at once instead, as asyncio's own
transports do; what the kernel does not take goes through Twisted's buffer as before.
"""

from __future__ import annotations

import functools
from typing import Any

from autobahn.websocket.protocol import PreparedMessage
from daphne.server import Server
from daphne.ws_protocol import WebSocketProtocol
from twisted.internet import tcp


def daphne_socket(send: Any) -> WebSocketProtocol | None:
    """The Daphne websocket behind an ASGI ``send`` callable, or None.

    Daphne hands each application ``partial(server.handle_reply, protocol)``; the
    middleware here (``tooltrail.ws_auth``) passes it on unwrapped."""
    if not isinstance(send, functools.partial) or len(send.args) != 1:
        return None
    protocol = send.args[0]
    if not isinstance(getattr(send.func, "__self__", None), Server):
        return None
    if not isinstance(protocol, WebSocketProtocol):
        return None
    return protocol


class SharedFrame:
    """A text frame for many sockets: ``text`` for the ASGI way, ``wire`` (header and
    UTF-8 payload, unmasked as a server sends) for ``write``."""

    __slots__ = ("text", "_wire", "_size")

    def __init__(self, text: str) -> None:
        self.text = text
        self._wire: bytes | None = None
        self._size = 0

    @property
    def wire(self) -> bytes:
        if self._wire is None:
            payload = self.text.encode("utf-8")
            prepared = PreparedMessage(payload, isBinary=False, applyMask=False, doNotCompress=True)
            self._wire, self._size = prepared.payloadHybi, len(payload)
        return self._wire

    def write(self, socket: WebSocketProtocol | None) -> bool:
        """Put the frame on ``socket``'s transport. True when that is done (or the socket
        is no longer open, where Daphne would drop the frame too); False when the frame
        must go the ASGI way instead."""
        if socket is None:
            return False
        if not self.text:  # Daphne sends nothing for an empty text either
            return True
        if socket.state != WebSocketProtocol.STATE_OPEN:
            return socket.state != WebSocketProtocol.STATE_CONNECTING
        if socket.send_queue or socket.websocket_extensions_in_use:
            return False
        wire = self.wire
        # Over the socket's message limit or fragment size, autobahn refuses or splits it.
        if (
            0 < socket.maxMessagePayloadSize < self._size
            or 0 < socket.autoFragmentSize < self._size
        ):
            return False
        _send(socket.transport, wire)
        return True


def _send(transport: Any, data: bytes) -> None:
    """Write ``data`` on ``transport``, at once if nothing is queued before it."""
    if (
        isinstance(transport, tcp.Connection)
        and not transport.TLS
        and transport.connected
        and not transport.disconnecting
        and getattr(transport, "_tempDataLen", 1) == 0
        and getattr(transport, "offset", -1) == len(getattr(transport, "dataBuffer", b"?"))
    ):
        sent = transport.writeSomeData(data)  # bytes taken, or the connection's loss
        if isinstance(sent, int) and sent > 0:
            if sent == len(data):
                return
            data = data[sent:]
    # Queued behind earlier data, or the rest of it; a lost connection is found (and
    # closed) by Twisted when it tries to send this.
    transport.write(data)
