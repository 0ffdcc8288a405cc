"""A cancel event that trips itself after a number of checks: a backend that checks it
between tokens is then interrupted at a known point, with no timing involved."""

from __future__ import annotations

import threading


class CancelAfter(threading.Event):
    def __init__(self, checks: int) -> None:
        super().__init__()
        self.checks = 0
        self.limit = checks

    def is_set(self) -> bool:
        self.checks += 1
        return self.checks > self.limit or super().is_set()
