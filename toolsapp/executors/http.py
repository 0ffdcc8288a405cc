"""``http`` tools: one OpenAPI operation, called for real.

``config`` (written by the OpenAPI importer) says where each argument goes: path
parameters into the path, query parameters into the query string, headers, and the body
(JSON, form, multipart or raw text). The server URL and auth come from the tool's
``HttpToolSource``; the secret is read from the environment variable it names at call
time and never stored. The whole call has one deadline (connect, send and every read
together) and the response one size limit (``TOOLTRAIL_HTTP_TOOL_MAX_BYTES``).

The result is ``{"status", "headers", "body"}``: a subset of the response headers, and the
body parsed as JSON when it says it is JSON, else text. A 4xx/5xx answer is a result,
not an error: the model reads it and can correct its call.
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import httpx
from django.conf import settings

from .base import ToolCancelled, ToolExecutionError, ToolTimeout

if TYPE_CHECKING:
    from toolsapp.models import Tool

KEPT_HEADERS = (
    "content-type",
    "content-length",
    "location",
    "retry-after",
    "etag",
    "last-modified",
    "link",
    "x-request-id",
)
KEPT_PREFIXES = ("x-ratelimit-", "ratelimit-")


def _text(value: Any, *, as_json: bool = False) -> str:
    if as_json or isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _query_pairs(entry: dict[str, Any], value: Any) -> list[tuple[str, str]]:
    name = entry["name"]
    if entry.get("serialize") == "json":
        return [(name, _text(value, as_json=True))]
    style, explode = entry.get("style", "form"), entry.get("explode", True)
    if isinstance(value, list):
        if style == "form" and explode:
            return [(name, _text(v)) for v in value]
        sep = {"spaceDelimited": " ", "pipeDelimited": "|"}.get(style, ",")
        return [(name, sep.join(_text(v) for v in value))]
    if isinstance(value, dict):
        if style == "deepObject":
            return [(f"{name}[{k}]", _text(v)) for k, v in value.items()]
        if explode:
            return [(str(k), _text(v)) for k, v in value.items()]
        return [(name, ",".join(f"{k},{_text(v)}" for k, v in value.items()))]
    return [(name, _text(value))]


def _secret(source) -> str:
    if not source.secret_env:
        raise ToolExecutionError(
            f"source {source.name!r} uses {source.get_auth_display().lower()} but names no "
            "environment variable for the secret"
        )
    secret = os.environ.get(source.secret_env)
    if not secret:
        raise ToolExecutionError(
            f"environment variable {source.secret_env} (the secret) is not set"
        )
    return secret


def request_build(tool: Tool, arguments: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of ``httpx.Client.build_request`` for one call."""
    config, source = tool.config or {}, tool.http_source
    if source is None:
        raise ToolExecutionError(f"http tool {tool.name!r} has no source")
    base = config.get("server") if urlsplit(config.get("server", "")).scheme else ""
    base = base or source.base_url
    if urlsplit(base).scheme not in ("http", "https"):
        raise ToolExecutionError(
            f"source {source.name!r} has no absolute http(s) base URL ({base!r}); "
            "set one (import_openapi --base-url)"
        )
    path = config.get("path", "/")
    query: list[tuple[str, str]] = []
    headers: dict[str, str] = {}
    for entry in config.get("params", []):
        if entry["prop"] not in arguments:
            continue
        value = arguments[entry["prop"]]
        where = entry["in"]
        if where == "path":
            if isinstance(value, list):
                text = ",".join(_text(v) for v in value)
            else:
                text = _text(value, as_json=entry.get("serialize") == "json")
            path = path.replace("{" + entry["name"] + "}", quote(text, safe=""))
        elif where == "query":
            query.extend(_query_pairs(entry, value))
        elif where == "header":
            if isinstance(value, list):
                headers[entry["name"]] = ",".join(_text(v) for v in value)
            else:
                headers[entry["name"]] = _text(value)
    request: dict[str, Any] = {"method": config.get("method", "GET")}
    body_config = config.get("body")
    if body_config:
        if body_config["mode"] == "merged":
            body: Any = {p: arguments[p] for p in body_config["props"] if p in arguments}
            present = bool(body) or any(p in arguments for p in body_config["props"])
        else:
            present = body_config["prop"] in arguments
            body = arguments.get(body_config["prop"])
        if present:
            media = body_config["media"]
            base_media = media.split(";")[0].strip().lower()
            if base_media == "application/x-www-form-urlencoded" and isinstance(body, dict):
                request["data"] = {k: _text(v) for k, v in body.items()}
            elif base_media == "multipart/form-data" and isinstance(body, dict):
                request["files"] = [(k, (None, _text(v))) for k, v in body.items()]
            elif "json" in base_media or base_media == "*/*":
                request["json"] = body
            else:
                request["content"] = _text(body).encode()
                headers["Content-Type"] = media
    auth = source.auth
    if auth == "api_key_header":
        headers[source.auth_name or "X-API-Key"] = _secret(source)
    elif auth == "api_key_query":
        query.append((source.auth_name or "api_key", _secret(source)))
    elif auth == "bearer":
        headers["Authorization"] = f"Bearer {_secret(source)}"
    request["url"] = base.rstrip("/") + "/" + path.lstrip("/")
    request["params"] = query
    request["headers"] = headers
    return request


def _body(content: bytes, content_type: str) -> Any:
    base = content_type.split(";")[0].strip().lower()
    if not content:
        return None
    if base == "application/json" or base.endswith("+json"):
        try:
            return json.loads(content)
        except ValueError:
            pass
    if base.startswith("text/") or "json" in base or "xml" in base or not base:
        charset = "utf-8"
        for part in content_type.split(";")[1:]:
            key, _, value = part.strip().partition("=")
            if key.lower() == "charset" and value:
                charset = value.strip('"')
        try:
            return content.decode(charset, errors="replace")
        except LookupError:
            return content.decode("utf-8", errors="replace")
    return f"<{len(content)} bytes of {base}>"


def _send(request: dict[str, Any], timeout: float, cancel: threading.Event | None) -> Any:
    limit = settings.TOOLTRAIL_HTTP_TOOL_MAX_BYTES
    deadline = time.monotonic() + timeout
    try:
        with httpx.Client(timeout=httpx.Timeout(timeout), follow_redirects=False) as client:
            built = client.build_request(**request)
            response = client.send(built, stream=True)
            try:
                chunks, size = [], 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > limit:
                        raise ToolExecutionError(
                            f"the response is larger than the {limit} byte limit"
                        )
                    if cancel is not None and cancel.is_set():
                        raise ToolCancelled("the run was cancelled during the HTTP call")
                    if time.monotonic() > deadline:
                        raise ToolTimeout(f"the API did not finish answering within {timeout:g} s")
                    chunks.append(chunk)
            finally:
                response.close()
    except httpx.TimeoutException as exc:
        raise ToolTimeout(f"the API did not answer within {timeout:g} s") from exc
    except httpx.HTTPError as exc:
        raise ToolExecutionError(f"{request['method']} {request['url']} failed: {exc}") from exc
    headers = {
        k: v
        for k, v in response.headers.items()
        if k.lower() in KEPT_HEADERS or k.lower().startswith(KEPT_PREFIXES)
    }
    return {
        "status": response.status_code,
        "headers": headers,
        "body": _body(b"".join(chunks), response.headers.get("content-type", "")),
    }


def execute(
    tool: Tool, arguments: dict[str, Any], timeout: float, cancel: threading.Event | None = None
) -> Any:
    request = request_build(tool, arguments)
    if cancel is None:
        return _send(request, timeout, None)
    # Waiting for an answer cannot be interrupted, so the request runs in a thread this
    # call stops waiting for when the run is cancelled; the thread ends by the deadline.
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = _send(request, timeout, cancel)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller below
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True, name="http-tool-call")
    thread.start()
    while thread.is_alive():
        thread.join(0.2)
        if cancel.is_set() and thread.is_alive():
            raise ToolCancelled("the run was cancelled during the HTTP call")
    if "error" in box:
        raise box["error"]
    return box.get("value")
