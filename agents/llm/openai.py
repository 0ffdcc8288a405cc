"""Any OpenAI-compatible chat-completions endpoint (vLLM, Ollama, llama.cpp server, hosted APIs).

Each call has an overall deadline (``config["deadline"]``, else the
TOOLTRAIL_MODEL_DEADLINE_SECONDS setting) besides the per-read ``config["timeout"]``: a
server that trickles its answer a byte at a time ends in a ModelError at the deadline.
The answer's size is capped (TOOLTRAIL_MODEL_REPLY_MAX_BYTES). The request runs in a
helper thread, so a cancel or the deadline gives up on it within a fraction of a second.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from typing import Any

import httpx
from django.conf import settings

from .base import ModelCancelled, ModelError, ModelReply, parse_openai_message

POLL_SECONDS = 0.2


class _GaveUp(Exception):
    """The helper thread stops reading: the caller gave up on the call."""


class OpenAIBackend:
    def __init__(self, endpoint) -> None:
        if not endpoint.base_url:
            raise ModelError(f"endpoint {endpoint.name!r} has no base URL")
        self.url = endpoint.base_url.rstrip("/") + "/chat/completions"
        self.model = endpoint.model
        self.config = endpoint.config if isinstance(endpoint.config, dict) else {}
        self.headers = {"Content-Type": "application/json"}
        if endpoint.api_key_env:
            key = os.environ.get(endpoint.api_key_env)
            if not key:
                raise ModelError(
                    f"environment variable {endpoint.api_key_env} (the API key) is not set"
                )
            self.headers["Authorization"] = f"Bearer {key}"
        try:
            self.timeout = float(self.config.get("timeout", 120))
            self.deadline = float(
                self.config.get("deadline", settings.TOOLTRAIL_MODEL_DEADLINE_SECONDS)
            )
        except (TypeError, ValueError) as exc:
            raise ModelError(
                f"endpoint {endpoint.name!r}: timeout and deadline must be numbers"
            ) from exc

    def _body(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "messages": messages}
        if tools:
            body["tools"] = tools
        if "temperature" in self.config:
            body["temperature"] = self.config["temperature"]
        if "max_tokens" in self.config:
            body["max_tokens"] = self.config["max_tokens"]
        return body

    def _fetch(
        self, client: httpx.Client, body: dict[str, Any], ends_at: float, give_up: threading.Event
    ) -> tuple[int, bytes]:
        limit = settings.TOOLTRAIL_MODEL_REPLY_MAX_BYTES
        with client.stream("POST", self.url, json=body, headers=self.headers) as response:
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > limit:
                    raise ModelError(f"{self.url} answered more than {limit} bytes")
                if give_up.is_set() or time.monotonic() > ends_at:
                    raise _GaveUp()
                chunks.append(chunk)
            return response.status_code, b"".join(chunks)

    def complete(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        *,
        cancel: threading.Event | None = None,
    ) -> ModelReply:
        body = self._body(messages, tools)
        ends_at = time.monotonic() + self.deadline
        give_up, done = threading.Event(), threading.Event()
        box: dict[str, Any] = {}
        client = httpx.Client(timeout=min(self.timeout, self.deadline))

        def fetch() -> None:
            try:
                box["answer"] = self._fetch(client, body, ends_at, give_up)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                box["error"] = exc
            finally:
                done.set()

        threading.Thread(target=fetch, daemon=True, name="model-call").start()
        try:
            while not done.wait(POLL_SECONDS):
                if cancel is not None and cancel.is_set():
                    raise ModelCancelled(f"the call to {self.url} was cancelled")
                if time.monotonic() > ends_at:
                    raise ModelError(
                        f"{self.url} gave no complete answer within the {self.deadline:g} s "
                        "deadline of a model call"
                    )
        finally:
            if not done.is_set():
                give_up.set()
                # Closing the client cuts the helper thread's read short.
                with contextlib.suppress(Exception):
                    client.close()
            else:
                client.close()
        if "error" in box:
            exc = box["error"]
            if isinstance(exc, ModelError):
                raise exc
            if isinstance(exc, _GaveUp):
                raise ModelError(
                    f"{self.url} gave no complete answer within the {self.deadline:g} s "
                    "deadline of a model call"
                )
            if isinstance(exc, httpx.HTTPError):
                raise ModelError(f"could not reach {self.url}: {exc}") from exc
            raise ModelError(f"the call to {self.url} failed: {type(exc).__name__}: {exc}") from exc
        status, content = box["answer"]
        text = content.decode("utf-8", "replace")
        if status >= 400:
            raise ModelError(f"{self.url} answered HTTP {status}: {text[:500]}")
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise ModelError(
                f"{self.url} answered something that is not JSON: {text[:300]}"
            ) from exc
        return parse_openai_message(data)
