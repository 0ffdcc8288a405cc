"""The merge methods by name: every ``MergeMethod`` subclass with a ``name`` in
the ``methods`` package. Adding a method is adding one module there."""

from __future__ import annotations

import importlib
import pkgutil

from . import methods as _package
from .methods.base import MergeMethod

for _module in pkgutil.iter_modules(_package.__path__):
    importlib.import_module(f"{_package.__name__}.{_module.name}")

METHODS: dict[str, MergeMethod] = {
    name: cls() for name, cls in sorted(MergeMethod.registered.items())
}


def method_get(*, name: str) -> MergeMethod | None:
    return METHODS.get(name)


__all__ = ["METHODS", "MergeMethod", "method_get"]
