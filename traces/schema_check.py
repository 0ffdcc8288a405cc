"""JSON-Schema checks of corrected tool calls.

``traces`` is a leaf app, so it does not import toolsapp's validator: it checks the
corrected arguments against the schema recorded on the tool-call step at call time
(``step.metadata["schema"]``), with the same ``jsonschema`` draft.
"""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError


def schema_problems(*, schema: dict[str, Any], arguments: Any) -> list[str]:
    """Each way ``arguments`` breaks ``schema`` ("where: what"), at most five; empty if none."""
    try:
        validator = Draft202012Validator(schema or {"type": "object"})
        errors = sorted(validator.iter_errors(arguments), key=lambda e: list(e.absolute_path))
    except SchemaError as exc:
        return [f"the recorded schema is not valid JSON Schema: {exc.message}"]
    return [
        f"{'/'.join(str(p) for p in e.absolute_path) or '(the arguments object)'}: {e.message}"
        for e in errors[:5]
    ]
