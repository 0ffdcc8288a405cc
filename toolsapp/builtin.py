"""Built-in Python tools: small, safe, deterministic enough to demo and test with.

Each is a plain function plus the JSON Schema of its arguments; ``BUILTIN_TOOLS`` is
what ``toolsapp.services.builtin_tools_sync`` writes to the database.
"""

from __future__ import annotations

import ast
import math
import operator
import time
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCTIONS = {
    "sqrt": math.sqrt,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "log": math.log,
    "exp": math.exp,
    "abs": abs,
    "round": round,
    "floor": math.floor,
    "ceil": math.ceil,
}
_CONSTANTS = {"pi": math.pi, "e": math.e}


# Integer arithmetic is exact and unbounded in Python, and a big power holds the GIL
# for as long as it takes (no timeout can stop it): results are capped by size, and so
# is every argument that sets how much work a call does (round's digits: round(1, -10**9)
# computes 10**(10**9)).
MAX_INT_BITS = 4096
MAX_ROUND_DIGITS = 400  # beyond a float's 308 decimal exponent nothing changes
MAX_NESTING = 100  # operators and calls inside one another
MAX_ECHO_CHARS = 100_000


def _check_call(name: str, args: list[float]) -> None:
    """Refuse arguments that would make a function's work grow without bound."""
    if name == "round" and len(args) == 2:
        digits = args[1]
        if not isinstance(digits, int):
            raise ValueError("round's digits must be a whole number")
        if abs(digits) > MAX_ROUND_DIGITS:
            raise ValueError(
                f"round's digits must be between -{MAX_ROUND_DIGITS} and {MAX_ROUND_DIGITS}"
            )


def _check_power(base: float, exponent: float) -> None:
    if abs(exponent) > 1000:
        raise ValueError("exponent too large")
    exact = isinstance(base, int) and isinstance(exponent, int)
    if exact and exponent > 0 and abs(base) > 1 and base.bit_length() * exponent > MAX_INT_BITS:
        raise ValueError(f"result too large (over {MAX_INT_BITS} bits)")


def _evaluate(node: ast.AST, depth: int = 0) -> float:
    if depth > MAX_NESTING:
        raise ValueError(f"expression nested too deeply (over {MAX_NESTING} levels)")
    if isinstance(node, ast.Expression):
        return _evaluate(node.body, depth + 1)
    if (
        isinstance(node, ast.Constant)
        and isinstance(node.value, int | float)
        and not isinstance(node.value, bool)
    ):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left, depth + 1), _evaluate(node.right, depth + 1)
        if isinstance(node.op, ast.Pow):
            _check_power(left, right)
        try:
            result = _BINARY[type(node.op)](left, right)
        except OverflowError as exc:
            raise ValueError("result too large for a floating-point number") from exc
        if isinstance(result, int) and result.bit_length() > MAX_INT_BITS:
            raise ValueError(f"result too large (over {MAX_INT_BITS} bits)")
        return result
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand, depth + 1))
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and not node.keywords
    ):
        args = [_evaluate(a, depth + 1) for a in node.args]
        _check_call(node.func.id, args)
        try:
            return _FUNCTIONS[node.func.id](*args)
        except OverflowError as exc:
            raise ValueError(f"{node.func.id}: result too large") from exc
    raise ValueError(f"unsupported expression element: {ast.dump(node)[:80]}")


def calculator(expression: str) -> dict[str, Any]:
    """Evaluate an arithmetic expression (no names but pi, e and a few math functions)."""
    if len(expression) > 500:
        raise ValueError("the expression is too long (over 500 characters)")
    try:
        tree = ast.parse(expression, mode="eval")
    except (SyntaxError, RecursionError, MemoryError) as exc:
        raise ValueError(f"not an arithmetic expression: {getattr(exc, 'msg', exc)}") from exc
    result = _evaluate(tree)
    if isinstance(result, float) and not math.isfinite(result):
        raise ValueError(f"the result is not a finite number ({result})")
    return {"expression": expression, "result": result}


def clock(timezone: str = "UTC") -> dict[str, Any]:
    """The current date and time in an IANA time zone."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {timezone!r}") from exc
    now = datetime.now(UTC).astimezone(zone)
    return {
        "timezone": timezone,
        "iso": now.isoformat(timespec="seconds"),
        "weekday": now.strftime("%A"),
    }


# factor to the base unit of each dimension
_UNITS: dict[str, tuple[str, float]] = {
    "m": ("length", 1.0),
    "km": ("length", 1000.0),
    "cm": ("length", 0.01),
    "mm": ("length", 0.001),
    "mi": ("length", 1609.344),
    "ft": ("length", 0.3048),
    "in": ("length", 0.0254),
    "kg": ("mass", 1.0),
    "g": ("mass", 0.001),
    "lb": ("mass", 0.45359237),
    "oz": ("mass", 0.028349523125),
    "l": ("volume", 1.0),
    "ml": ("volume", 0.001),
    "gal": ("volume", 3.785411784),
    "s": ("time", 1.0),
    "min": ("time", 60.0),
    "h": ("time", 3600.0),
    "day": ("time", 86400.0),
}
_TEMPERATURES = {"c", "f", "k"}


def _to_kelvin(value: float, unit: str) -> float:
    return {"c": value + 273.15, "f": (value - 32) * 5 / 9 + 273.15, "k": value}[unit]


def _from_kelvin(value: float, unit: str) -> float:
    return {"c": value - 273.15, "f": (value - 273.15) * 9 / 5 + 32, "k": value}[unit]


def unit_convert(value: float, from_unit: str, to_unit: str) -> dict[str, Any]:
    """Convert a quantity between units of length, mass, volume, time or temperature."""
    try:
        value = float(value)
    except (OverflowError, TypeError, ValueError) as exc:
        raise ValueError(f"value must be a number a float can hold: {exc}") from exc
    src, dst = from_unit.lower(), to_unit.lower()
    if src in _TEMPERATURES and dst in _TEMPERATURES:
        result = _from_kelvin(_to_kelvin(value, src), dst)
    else:
        if src not in _UNITS or dst not in _UNITS:
            unknown = src if src not in _UNITS else dst
            raise ValueError(f"unknown unit {unknown!r}")
        (dim_a, fa), (dim_b, fb) = _UNITS[src], _UNITS[dst]
        if dim_a != dim_b:
            raise ValueError(f"cannot convert {dim_a} ({from_unit}) to {dim_b} ({to_unit})")
        result = value * fa / fb
    if not math.isfinite(result):
        raise ValueError("the result is too large for a floating-point number")
    return {"value": value, "from_unit": from_unit, "to_unit": to_unit, "result": round(result, 10)}


def echo(text: str) -> dict[str, Any]:
    """Return the text unchanged (handy to see how output is displayed, markup included)."""
    if len(text) > MAX_ECHO_CHARS:
        raise ValueError(f"the text is too long (over {MAX_ECHO_CHARS} characters)")
    return {"text": text}


def sleep(seconds: float) -> dict[str, Any]:
    """Wait, then answer: for demos of long tool calls and timeouts."""
    if not 0 <= seconds <= 60:
        raise ValueError("seconds must be between 0 and 60")
    time.sleep(seconds)
    return {"slept": seconds}


_UNIT_NAMES = sorted(_UNITS) + sorted(_TEMPERATURES)

BUILTIN_TOOLS: list[dict[str, Any]] = [
    {
        "name": "calculator",
        "callable": "toolsapp.builtin:calculator",
        "description": "Evaluate an arithmetic expression such as '(2 + 3) * sqrt(16)'.",
        "parameters": {
            "type": "object",
            "properties": {
                "expression": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 500,
                    "examples": ["2 + 2"],
                }
            },
            "required": ["expression"],
            "additionalProperties": False,
        },
    },
    {
        "name": "clock",
        "callable": "toolsapp.builtin:clock",
        "description": "The current date and time in a time zone (IANA name, e.g. Europe/Paris).",
        "parameters": {
            "type": "object",
            "properties": {"timezone": {"type": "string", "default": "UTC", "maxLength": 100}},
            "additionalProperties": False,
        },
    },
    {
        "name": "unit_convert",
        "callable": "toolsapp.builtin:unit_convert",
        "description": "Convert a value between units of length, mass, volume, time or temperature (c, f, k).",
        "parameters": {
            "type": "object",
            "properties": {
                "value": {"type": "number"},
                "from_unit": {"type": "string", "enum": _UNIT_NAMES},
                "to_unit": {"type": "string", "enum": _UNIT_NAMES},
            },
            "required": ["value", "from_unit", "to_unit"],
            "additionalProperties": False,
        },
    },
    {
        "name": "echo",
        "callable": "toolsapp.builtin:echo",
        "description": "Return the given text unchanged.",
        "parameters": {
            "type": "object",
            "properties": {"text": {"type": "string", "maxLength": MAX_ECHO_CHARS}},
            "required": ["text"],
            "additionalProperties": False,
        },
    },
    {
        "name": "sleep",
        "callable": "toolsapp.builtin:sleep",
        "description": "Wait the given number of seconds (at most 60), then answer.",
        "parameters": {
            "type": "object",
            "properties": {"seconds": {"type": "number", "minimum": 0, "maximum": 60}},
            "required": ["seconds"],
            "additionalProperties": False,
        },
    },
]
