"""A real OpenAI-compatible HTTP server for the backend and run tests."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class FakeOpenAI:
    """A real HTTP server on 127.0.0.1 playing queued answers and keeping the requests."""

    base_url: str = ""
    answers: list[tuple[int, str, bytes]] = field(default_factory=list)
    requests: list[dict] = field(default_factory=list)

    def answer_json(self, body: dict, status: int = 200) -> None:
        self.answers.append((status, "application/json", json.dumps(body).encode()))

    def answer_raw(self, body: bytes, status: int = 200, content_type: str = "text/html") -> None:
        self.answers.append((status, content_type, body))


@pytest.fixture
def openai_server() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            length = int(self.headers.get("Content-Length", 0))
            fake.requests.append(
                {
                    "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": json.loads(self.rfile.read(length) or b"null"),
                }
            )
            status, content_type, body = (
                fake.answers.pop(0)
                if fake.answers
                else (404, "application/json", b'{"error": "no answer left"}')
            )
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
