"""A python tool target for the worker tests: it writes its pid to a file, then spins."""

from __future__ import annotations

import os


def spin(marker: str) -> str:
    with open(marker, "w") as f:
        f.write(str(os.getpid()))
    while True:
        pass
