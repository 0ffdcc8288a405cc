"""The "try it" form of a tool, generated from its JSON Schema.

Each top-level property becomes one field: a text box for strings, a number box for
numbers and integers, a select for enums and booleans, and a JSON text area for anything
else (objects, arrays, ``$ref``s, unions). Empty fields are left out of the arguments.
The whole arguments object may instead be typed as JSON. Either way the arguments then go
through the same validation and executor as an agent's call.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .validation import ToolArgumentsError, arguments_parse

RAW_FIELD = "arguments_json"


@dataclass
class TryField:
    name: str
    widget: str  # text, number, select, json
    required: bool
    description: str = ""
    type_label: str = ""
    choices: list[tuple[str, str]] = field(default_factory=list)
    value: str = ""
    step: str = "any"

    @property
    def input_name(self) -> str:
        return f"arg:{self.name}"


def _type_of(schema: Any) -> str | None:
    if not isinstance(schema, dict):
        return None
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        kind = kinds[0] if len(kinds) == 1 else None
    return kind if isinstance(kind, str) else None


def try_fields(*, schema: dict[str, Any], data: dict[str, str] | None = None) -> list[TryField]:
    """One field per top-level property of ``schema`` (``data``: values typed before)."""
    data = data or {}
    required = set(schema.get("required") or [])
    fields = []
    for name, prop in (schema.get("properties") or {}).items():
        prop = prop if isinstance(prop, dict) else {}
        kind = _type_of(prop)
        enum = prop.get("enum")
        try_field = TryField(
            name=name,
            widget="json",
            required=name in required,
            description=str(prop.get("description") or "")[:300],
            type_label=kind or ("reference" if "$ref" in prop else "JSON"),
        )
        if isinstance(enum, list) and enum and all(isinstance(v, str | int | float) for v in enum):
            try_field.widget = "select"
            try_field.choices = [(json.dumps(v), str(v)) for v in enum]
        elif kind == "boolean":
            try_field.widget = "select"
            try_field.choices = [("true", "true"), ("false", "false")]
        elif kind in ("integer", "number"):
            try_field.widget = "number"
            try_field.step = "1" if kind == "integer" else "any"
        elif kind == "string":
            try_field.widget = "text"
        try_field.value = data.get(try_field.input_name, "")
        fields.append(try_field)
    return fields


def try_arguments(*, schema: dict[str, Any], data: dict[str, str]) -> dict[str, Any]:
    """The arguments object the form's ``data`` stands for. Raises ToolArgumentsError
    for a value that cannot be read (it does not check the schema: the call does)."""
    raw = (data.get(RAW_FIELD) or "").strip()
    if raw:
        return arguments_parse(raw)
    arguments: dict[str, Any] = {}
    for f in try_fields(schema=schema, data=data):
        text = f.value.strip() if f.widget != "text" else f.value
        if text == "":
            continue
        if f.widget == "text":
            arguments[f.name] = text
        elif f.widget == "number":
            try:
                number = float(text)
            except ValueError:
                raise ToolArgumentsError(f"{f.name}: {text!r} is not a number") from None
            arguments[f.name] = int(number) if f.step == "1" and number.is_integer() else number
        else:  # select values and JSON fields are JSON text
            try:
                arguments[f.name] = json.loads(text)
            except json.JSONDecodeError as exc:
                if f.widget == "json" and f.type_label == "string":
                    arguments[f.name] = text
                    continue
                raise ToolArgumentsError(f"{f.name}: not valid JSON ({exc.msg})") from None
    return arguments
