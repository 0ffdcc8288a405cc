"""A frame built once for many sockets (tooltrail.ws_broadcast): the bytes are the ones
autobahn's own send would write, and it reaches Daphne's socket through the ASGI stack
the server really runs."""

from __future__ import annotations

import asyncio
import socket

import pytest
from autobahn.twisted.websocket import WebSocketServerProtocol
from daphne.server import Server
from daphne.ws_protocol import WebSocketFactory, WebSocketProtocol
from twisted.internet import tcp
from twisted.internet.testing import StringTransport

from tooltrail.ws_auth import websocket_auth_stack
from tooltrail.ws_broadcast import SharedFrame, daphne_socket


def open_socket(protocol_class=WebSocketServerProtocol):
    """A server-side websocket past its handshake, writing into a string transport."""
    factory = WebSocketFactory(Server(application=None, endpoints=["tcp:port=0"]))
    factory.protocol = protocol_class
    protocol = factory.buildProtocol(None)
    transport = StringTransport()
    protocol.makeConnection(transport)
    protocol.state = WebSocketProtocol.STATE_OPEN
    protocol.websocket_extensions_in_use = []
    return protocol, transport


def test_an_empty_text_sends_nothing_as_daphne_does():
    protocol, transport = open_socket()
    transport.clear()
    assert SharedFrame("").write(protocol)
    assert transport.value() == b""


@pytest.mark.parametrize("text", ["é" * 10, "x" * 125, "y" * 126, "€" * 30_000, "z" * 70_000])
def test_the_frame_is_what_autobahn_would_send(text):
    ours, ours_wire = open_socket()
    theirs, their_wire = open_socket()
    ours_wire.clear()
    their_wire.clear()

    assert SharedFrame(text).write(ours)
    theirs.sendMessage(text.encode("utf-8"), isBinary=False)

    assert ours_wire.value() == their_wire.value()
    assert len(ours_wire.value()) > len(text.encode("utf-8")) > 0


def test_one_frame_serves_many_sockets_and_is_encoded_once():
    frame = SharedFrame('{"type": "step", "seq": 1}')
    sockets = [open_socket() for _ in range(3)]
    for protocol, transport in sockets:
        transport.clear()
        assert frame.write(protocol)
    assert {transport.value() for _, transport in sockets} == {frame.wire}
    assert frame.wire is frame.wire


def test_a_closed_socket_gets_nothing_and_a_busy_one_is_left_to_the_asgi_way():
    frame = SharedFrame("hello")
    closed, closed_wire = open_socket()
    closed.state = WebSocketProtocol.STATE_CLOSED
    closed_wire.clear()
    assert frame.write(closed)  # done: nothing to send to a closed socket
    assert closed_wire.value() == b""

    queued, queued_wire = open_socket()
    queued.send_queue.append((b"earlier", False))
    queued_wire.clear()
    assert not frame.write(queued)  # autobahn must send what it queued first
    assert queued_wire.value() == b""

    compressed, compressed_wire = open_socket()
    compressed.websocket_extensions_in_use = ["permessage-deflate"]
    compressed_wire.clear()
    assert not frame.write(compressed)
    assert compressed_wire.value() == b""

    assert not frame.write(None)  # not a Daphne socket


def test_daphne_hands_the_application_a_send_that_leads_to_its_socket():
    server = Server(application=None, endpoints=["tcp:port=0"])
    protocol = WebSocketProtocol()
    server.connections = {protocol: {}}
    got = {}

    async def application(scope, receive, send):
        got["send"] = send

    server.application = application

    async def start():
        server.create_application(protocol, {"type": "websocket"})
        await asyncio.sleep(0)

    asyncio.run(start())
    assert daphne_socket(got["send"]) is protocol

    async def other_send(message):
        pass

    assert daphne_socket(other_send) is None


@pytest.mark.django_db(transaction=True)
def test_the_websocket_middleware_passes_daphnes_send_on_unwrapped():
    got = {}

    async def consumer(scope, receive, send):
        got["send"] = send

    async def receive():
        return {"type": "websocket.connect"}

    async def send(message):
        pass

    scope = {"type": "websocket", "path": "/ws/x/", "headers": [], "query_string": b""}
    asyncio.run(websocket_auth_stack(consumer)(scope, receive, send))
    assert got["send"] is send


def test_a_frame_over_the_sockets_limits_is_left_to_autobahn():
    frame = SharedFrame("x" * 2000)
    limited, limited_wire = open_socket()
    limited.maxMessagePayloadSize = 1000  # Daphne's --websocket_max_message_size
    limited_wire.clear()
    assert not frame.write(limited)
    assert limited_wire.value() == b""

    fragmenting, _ = open_socket()
    fragmenting.autoFragmentSize = 1000
    assert not frame.write(fragmenting)

    roomy, roomy_wire = open_socket()
    roomy.maxMessagePayloadSize = 2000
    roomy_wire.clear()
    assert frame.write(roomy)
    assert roomy_wire.value() == frame.wire


class RecordingReactor:
    """What Twisted's tcp.Server asks of its reactor, recorded (nothing runs)."""

    def __init__(self) -> None:
        self.writers: list = []

    def addReader(self, reader) -> None:  # noqa: N802 - Twisted's interface
        pass

    def addWriter(self, writer) -> None:  # noqa: N802
        if writer not in self.writers:
            self.writers.append(writer)

    def removeWriter(self, writer) -> None:  # noqa: N802
        if writer in self.writers:
            self.writers.remove(writer)

    def removeReader(self, reader) -> None:  # noqa: N802
        pass


def tcp_socket(send_buffer: int | None = None):
    """A Daphne socket on a real TCP connection (Twisted's tcp.Server over a socket
    pair), and the peer's end to read what it sent."""
    here, peer = socket.socketpair()
    if send_buffer:
        here.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
    here.setblocking(False)
    peer.settimeout(5)
    protocol, _ = open_socket()
    reactor = RecordingReactor()
    transport = tcp.Server(here, protocol, ("127.0.0.1", 1), None, 1, reactor)
    protocol.transport = transport
    return protocol, transport, reactor, peer


def read_exactly(peer, size: int) -> bytes:
    got = b""
    while len(got) < size:
        got += peer.recv(size - len(got))
    return got


def test_an_idle_connection_gets_the_frame_at_once_without_waking_the_reactor():
    protocol, transport, reactor, peer = tcp_socket()
    frame = SharedFrame('{"type": "step", "seq": 7}')
    assert frame.write(protocol)
    assert read_exactly(peer, len(frame.wire)) == frame.wire
    assert reactor.writers == []  # nothing left for a later turn
    assert transport.dataBuffer == b"" and not transport._tempDataBuffer


def test_a_frame_queues_behind_earlier_data_and_keeps_the_order():
    protocol, transport, reactor, peer = tcp_socket()
    transport.write(b"earlier bytes")  # queued by Twisted, not yet sent
    frame = SharedFrame("after them")
    assert frame.write(protocol)
    assert reactor.writers == [transport]
    peer.setblocking(False)
    with pytest.raises(BlockingIOError):
        peer.recv(100)  # nothing jumped the queue
    peer.setblocking(True)
    transport.doWrite()  # the reactor's turn
    assert read_exactly(peer, 13 + len(frame.wire)) == b"earlier bytes" + frame.wire


def test_what_the_kernel_does_not_take_is_left_to_twisted():
    protocol, transport, reactor, peer = tcp_socket(send_buffer=4096)
    frame = SharedFrame("x" * 500_000)
    assert frame.write(protocol)
    assert reactor.writers == [transport]  # the rest waits in Twisted's buffer
    received = b""
    while len(received) < len(frame.wire):
        transport.doWrite()
        received += peer.recv(1 << 20)
    assert received == frame.wire
