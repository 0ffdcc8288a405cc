"""Numbers from query strings, read strictly: ASCII digits only (``int("²")`` fails and
``"²".isdigit()`` is True), within the range a database column holds."""

from __future__ import annotations

import re

MAX_CURSOR = 2**31 - 1
_INTEGER = re.compile(r"-?[0-9]{1,18}")


def int_param(raw: str | None, *, default: int, lo: int = 0, hi: int = MAX_CURSOR) -> int | None:
    """``raw`` as an int in [lo, hi]; ``default`` when absent or empty; None when it is
    not a plain integer or out of range."""
    if raw is None or raw == "":
        return default
    if not _INTEGER.fullmatch(raw):
        return None
    value = int(raw)
    return value if lo <= value <= hi else None
