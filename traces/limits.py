"""Size caps on what a step keeps in its row.

A tool or a model may answer megabytes; the step row (and every page, socket message
and model prompt built from it) keeps at most ``TOOLTRAIL_STEP_FIELD_MAX_BYTES`` of each
of input, output and error. The full value goes to a ``StepBlob`` row, read on demand.

A capped value is stored as ``{"truncated": "truncated: N bytes", "preview": "..."}``
and the step's ``metadata["truncated"]`` names the capped fields with the bytes cut,
so the page can say so and offer the whole value.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings


@dataclass
class Capped:
    value: Any  # what the row keeps
    full_text: str | None = None  # the whole value's JSON text, when it was cut
    cut_bytes: int = 0


def value_json(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False, allow_nan=False)


# PostgreSQL text and jsonb cannot hold NUL: stored values get U+FFFD in its place.
_JSON_NUL = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def text_clean(text: str) -> str:
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


def text_size(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def value_cap(value: Any, *, limit: int | None = None) -> Capped:
    """``value`` as it may be stored: unchanged when its JSON text fits in ``limit``
    bytes, else a preview of its first ``limit`` bytes with a "truncated" marker."""
    limit = settings.TOOLTRAIL_STEP_FIELD_MAX_BYTES if limit is None else limit
    if value is None or isinstance(value, bool | int | float):
        return Capped(value)
    if isinstance(value, str) and len(value) * 4 <= limit:
        return Capped(text_clean(value))  # fits whatever its characters
    try:
        text = value_json(value)
    except (TypeError, ValueError, RecursionError):
        # Not storable as JSON (NaN, a cycle, nesting deeper than the parser allows):
        # keep its text form instead, capped like any string.
        try:
            fallback = repr(value)[: limit * 2]
        except RecursionError:
            fallback = "<a value nested too deeply to store>"
        return value_cap(fallback, limit=limit)
    if "\\u0000" in text:
        text = _JSON_NUL.sub(r"\1\\ufffd", text)
        value = json.loads(text)
    # Fast path: every UTF-8 character is at most 4 bytes.
    if len(text) * 4 <= limit or text_size(text) <= limit:
        return Capped(value)
    source = text_clean(value) if isinstance(value, str) else text
    preview = source.encode("utf-8", "surrogatepass")[:limit].decode("utf-8", "ignore")
    cut = text_size(text) - text_size(preview)
    return Capped(
        {"truncated": f"truncated: {cut} bytes", "preview": preview},
        full_text=text,
        cut_bytes=cut,
    )


def text_cap(text: str, *, limit: int | None = None) -> tuple[str, str | None, int]:
    """A plain text field (an error message) cut to ``limit`` bytes with a marker:
    (kept text, the whole text if cut, bytes cut)."""
    limit = settings.TOOLTRAIL_STEP_FIELD_MAX_BYTES if limit is None else limit
    text = text_clean(text)
    if len(text) * 4 <= limit or text_size(text) <= limit:
        return text, None, 0
    kept = text.encode("utf-8", "surrogatepass")[:limit].decode("utf-8", "ignore")
    cut = text_size(text) - text_size(kept)
    return f"{kept}\n… truncated: {cut} bytes", text, cut
