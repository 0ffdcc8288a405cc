"""JSON-Schema validation of tool-call arguments, with messages a model (and a person) can act on."""

from __future__ import annotations

import json
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError


class ToolArgumentsError(ValueError):
    """The arguments of a tool call cannot be used: not JSON, not an object, or they
    break the tool's schema. The message names every problem and where it is."""


def schema_check(schema: dict[str, Any]) -> None:
    """Raise ToolArgumentsError if ``schema`` is not a valid JSON Schema."""
    try:
        Draft202012Validator.check_schema(schema or {})
    except SchemaError as exc:
        raise ToolArgumentsError(
            f"the tool's parameters are not a valid JSON Schema: {exc.message}"
        ) from exc


def arguments_parse(raw: str | dict[str, Any] | None) -> dict[str, Any]:
    """Decode the model's argument text into an object."""
    if raw is None or raw == "":
        return {}
    if isinstance(raw, dict):
        return raw
    if not isinstance(raw, str):
        raise ToolArgumentsError(
            f"arguments must be a JSON object, got {type(raw).__name__}: {str(raw)[:200]}"
        )
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ToolArgumentsError(
            f"arguments are not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}): {raw[:200]}"
        ) from exc
    except (ValueError, RecursionError) as exc:
        # Nesting deeper than the parser goes, or an integer of thousands of digits.
        raise ToolArgumentsError(f"arguments cannot be read: {str(exc)[:200]}") from exc
    if not isinstance(value, dict):
        raise ToolArgumentsError(
            f"arguments must be a JSON object, got {type(value).__name__}: {raw[:200]}"
        )
    return value


def arguments_check(*, schema: dict[str, Any], arguments: dict[str, Any]) -> None:
    """Raise ToolArgumentsError listing each way ``arguments`` breaks ``schema``."""
    validator = Draft202012Validator(schema or {"type": "object"})
    errors = sorted(validator.iter_errors(arguments), key=lambda e: list(e.absolute_path))
    if not errors:
        return
    problems = []
    for error in errors[:5]:
        where = "/".join(str(p) for p in error.absolute_path) or "(the arguments object)"
        problems.append(f"{where}: {error.message}")
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    raise ToolArgumentsError("arguments break the tool's schema: " + "; ".join(problems) + more)
