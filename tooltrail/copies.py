"""Names for copies: ``<name>-copy``, then ``<name>-copy-2``, … (what Duplicate uses)."""

from __future__ import annotations

from django.db import models


def copy_name(*, model: type[models.Model], field: str, base: str, max_length: int) -> str:
    """The first of ``base-copy``, ``base-copy-2``, … not taken in ``model.field``."""
    n = 1
    while True:
        suffix = "-copy" if n == 1 else f"-copy-{n}"
        candidate = base[: max_length - len(suffix)] + suffix
        if not model.objects.filter(**{field: candidate}).exists():
            return candidate
        n += 1
