"""Any OpenAI-compatible chat-completions endpoint (vLLM, Ollama, llama.cpp server, hosted APIs)."""

from __future__ import annotations

import os
from typing import Any

import httpx

from .base import ModelError, ModelReply, parse_openai_message


class OpenAIBackend:
    def __init__(self, endpoint) -> None:
        if not endpoint.base_url:
            raise ModelError(f"endpoint {endpoint.name!r} has no base URL")
        self.url = endpoint.base_url.rstrip("/") + "/chat/completions"
        self.model = endpoint.model
        self.config = endpoint.config or {}
        self.headers = {"Content-Type": "application/json"}
        if endpoint.api_key_env:
            key = os.environ.get(endpoint.api_key_env)
            if not key:
                raise ModelError(
                    f"environment variable {endpoint.api_key_env} (the API key) is not set"
                )
            self.headers["Authorization"] = f"Bearer {key}"

    def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> ModelReply:
        body: dict[str, Any] = {"model": self.model, "messages": messages}
        if tools:
            body["tools"] = tools
        if "temperature" in self.config:
            body["temperature"] = self.config["temperature"]
        if "max_tokens" in self.config:
            body["max_tokens"] = self.config["max_tokens"]
        try:
            response = httpx.post(
                self.url, json=body, headers=self.headers, timeout=self.config.get("timeout", 120)
            )
        except httpx.HTTPError as exc:
            raise ModelError(f"could not reach {self.url}: {exc}") from exc
        if response.status_code >= 400:
            raise ModelError(
                f"{self.url} answered HTTP {response.status_code}: {response.text[:500]}"
            )
        try:
            data = response.json()
        except ValueError as exc:
            raise ModelError(
                f"{self.url} answered something that is not JSON: {response.text[:300]}"
            ) from exc
        return parse_openai_message(data)
