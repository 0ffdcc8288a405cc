"""A real HTTP server for tests: it answers with what it received (method, path, query,
headers, body); a few paths misbehave on purpose (huge, slow, text, missing)."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit


class EchoHandler(BaseHTTPRequestHandler):
    """Answers with what it received; a few paths misbehave on purpose."""

    def log_message(self, *args) -> None:
        pass

    def _answer(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if url.path.endswith("/pets/huge"):
            body, ctype = b"x" * 200_000, "text/plain"
        elif url.path.endswith("/pets/slow"):
            time.sleep(3)
            body, ctype = b"{}", "application/json"
        elif url.path.endswith("/pets/text"):
            body, ctype = "caf\u00e9".encode("latin-1"), "text/plain; charset=latin-1"
        else:
            echo = {
                "method": self.command,
                "path": url.path,
                "query": parse_qsl(url.query),
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": raw.decode(),
            }
            body, ctype = json.dumps(echo).encode(), "application/json"
        status = 404 if url.path.endswith("/pets/missing") else 200
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-RateLimit-Remaining", "41")
        self.send_header("X-Internal-Secret-Header", "not for the model")
        self.end_headers()
        # The client may stop reading (the size limit).
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = _answer


@contextlib.contextmanager
def echo_server() -> Iterator[str]:
    """Serve on a free port of 127.0.0.1 in a thread; yields the base URL."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), EchoHandler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
