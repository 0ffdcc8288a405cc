"""How BFCL reads Java and JavaScript argument values.

For Java and JavaScript cases the Berkeley Function Calling Leaderboard's checker receives
every argument as the source text the model wrote (``"42L"``, ``"3.5f"``,
``"new ArrayList<Long>(Arrays.asList(1L, 2L))"``, ``"[1, 2]"``) and turns it into a Python
value by the declared type before comparing. A text that does not read as its type stays a
string (and then fails the comparison); these functions follow the official converters'
rules, quirks included, so that verdicts agree with the leaderboard's.
"""

from __future__ import annotations

import re
from typing import Any

JAVA_TYPES: dict[str, type] = {
    "byte": int,
    "short": int,
    "integer": int,
    "float": float,
    "double": float,
    "long": int,
    "boolean": bool,
    "char": str,
    "Array": list,
    "ArrayList": list,
    "Set": set,
    "HashMap": dict,
    "Hashtable": dict,
    "Queue": list,
    "Stack": list,
    "String": str,
    "any": str,
}

JS_TYPES: dict[str, type] = {
    "String": str,
    "integer": int,
    "float": float,
    "Bigint": int,
    "Boolean": bool,
    "dict": dict,
    "array": list,
    "any": str,
}

_INT = re.compile(r"^-?\d+$")
_JAVA_FLOAT = re.compile(r"^-?\d+(\.\d+)?([eE][+-]?\d+)?[fF]$")
_JAVA_DOUBLE = re.compile(r"^-?\d+(\.\d+)?([eE][+-]?\d+)?$")
_JAVA_LONG = re.compile(r"^-?\d+[lL]$")
_JS_FLOAT = re.compile(r"^-?\d+(\.\d+)?$")
_JS_BIGINT = re.compile(r"^-?\d+n$")


class UnsupportedType(ValueError):
    """The declared type has no converter (BFCL raises here too)."""


# --- Java -------------------------------------------------------------------------------


def java_value(text: Any, declared: str, item_type: str | None = None) -> Any:
    """The Python value BFCL reads from Java source ``text`` of type ``declared``."""
    if declared not in JAVA_TYPES:
        raise UnsupportedType(f"unsupported Java type {declared!r}")
    if declared in ("byte", "short", "integer"):
        return int(text) if _INT.match(text) else str(text)
    if declared == "float":
        return float(text[:-1]) if _JAVA_FLOAT.match(text) else str(text)
    if declared == "double":
        return float(text) if _JAVA_DOUBLE.match(text) else str(text)
    if declared == "long":
        return int(text[:-1]) if _JAVA_LONG.match(text) else str(text)
    if declared == "boolean":
        return text == "true" if text in ("true", "false") else str(text)
    if declared == "char":
        # The official pattern can never match a one-character literal, so a char always
        # stays as written.
        return str(text) if not re.match(r"^\'.$\'", text) else text
    if declared == "ArrayList":
        return _java_arraylist(text, item_type)
    if declared == "Array":
        return _java_array(text, item_type)
    if declared == "HashMap":
        return _java_hashmap(text)
    if declared in ("String", "any"):
        return str(text)
    raise UnsupportedType(f"{declared} conversion is not implemented")


def _java_element(text: str, item_type: str | None) -> Any:
    if item_type in ("char", "String"):
        return text[1:-1]  # the quotes
    return java_value(text, item_type) if item_type else java_literal(text)


def _java_arraylist(text: str, item_type: str | None) -> Any:
    as_list = re.search(r"new\s+ArrayList<\w*>\(Arrays\.asList\((.+?)\)\)", text)
    if as_list:
        return [_java_element(part.strip(), item_type) for part in as_list.group(1).split(",")]
    with_adds = re.search(r"new\s+ArrayList<\w*>\(\)\s*\{\{\s*(.+?)\s*\}\}", text, re.DOTALL)
    if with_adds:
        return [
            _java_element(part.strip(), item_type)
            for part in re.findall(r"add\((.+?)\)", with_adds.group(1))
        ]
    if re.search(r"new\s+ArrayList<\w*>\(\)", text):
        return []
    return text


def _java_array(text: str, item_type: str | None) -> Any:
    match = re.search(r"new\s+\w+\[\]\s*\{(.*?)\}", text)
    if not match:
        return text
    parts = [p.strip() for p in match.group(1).split(",") if p.strip()]
    if item_type:
        return [java_value(p, item_type) for p in parts]
    return [java_literal(p) for p in parts]


def _java_hashmap(text: str) -> Any:
    match = re.search(r"new\s+HashMap<.*?>\s*\(\)\s*\{\s*\{?\s*(.*?)\s*\}?\s*\}", text, re.DOTALL)
    if match:
        body = match.group(1)
        if not body.strip():
            return {}
        return {
            key: java_literal(value.strip())
            for key, value in re.findall(r"put\(\"(.*?)\",\s*(.*?)\)", body)
        }
    if re.search(r"new\s+HashMap<.*?>\s*\(\)", text):
        return {}
    return text


def java_literal(text: str) -> Any:
    """A Java literal read without a declared type."""
    if text == "true":
        return True
    if text == "false":
        return False
    if text.startswith('"') and text.endswith('"'):
        return text[1:-1]
    if _JAVA_LONG.match(text):
        return int(text[:-1])
    if _JAVA_FLOAT.match(text):
        return float(text[:-1])
    return _number_or_text(text)


# --- JavaScript -------------------------------------------------------------------------


def js_value(text: Any, declared: str, item_type: str | None = None) -> Any:
    """The Python value BFCL reads from JavaScript source ``text`` of type ``declared``."""
    if declared not in JS_TYPES:
        raise UnsupportedType(f"unsupported JavaScript type {declared!r}")
    if declared == "String":
        quoted = (text.startswith('"') and text.endswith('"')) or (
            text.startswith("'") and text.endswith("'")
        )
        return text[1:-1] if quoted else str(text)
    if declared == "integer":
        return int(text) if _INT.match(text) else str(text)
    if declared == "float":
        return float(text) if _JS_FLOAT.match(text) else str(text)
    if declared == "Bigint":
        return int(text[:-1]) if _JS_BIGINT.match(text) else str(text)
    if declared == "Boolean":
        return text == "true" if text in ("true", "false") else str(text)
    if declared == "dict":
        return _js_object(text)
    if declared == "array":
        return _js_array(text, item_type)
    return str(text)  # any


_JS_2D = re.compile(
    r"\[\s*\[.*?\]\s*(,\s*\[.*?\]\s*)*\]|\bnew\s+Array\(\s*\[.*?\]\s*(,\s*\[.*?\]\s*)*\)"
)
_JS_1D = re.compile(r"\[(.*?)\]|\bnew\s+Array\((.*?)\)")


def _js_array(text: str, item_type: str | None) -> Any:
    code = text.strip()
    try:
        nested = _JS_2D.match(code)
        if nested:
            rows = []
            for index, row in enumerate(re.findall(r"\[(.*?)\]", nested.group(0))):
                row = row.strip()
                if index == 0 and row.startswith("["):
                    row = row[1:]
                rows.append([js_literal(e.strip()) for e in row.split(",")])
            return rows
        flat = _JS_1D.match(code)
        if not flat:
            return code
        inner = flat.group(1) if flat.group(1) is not None else flat.group(2)
        inner = (inner or "").strip()
        elements = inner.split(",") if inner else []
        if item_type:
            return [
                js_value(e.strip(), item_type, "String")
                if e.strip().startswith(("'", '"'))
                else js_value(e.strip(), item_type)
                for e in elements
            ]
        return [js_literal(e.strip()) for e in elements]
    except Exception:  # noqa: BLE001 - BFCL keeps the text when its reader fails
        return code


def _js_object(text: str) -> Any:
    code = text.strip()
    if code == "{}":
        return {}
    match = re.match(r"\{(.*?)\}", code)
    if not match:
        return code
    try:
        result: dict[str, Any] = {}
        for key, value in re.findall(r"([^:]+):\s*(.*?)(?:,\s*(?=[^,]+:)|$)", match.group(1)):
            key = key.strip().strip("'\"")
            value = value.strip()
            if value.startswith("[") and value.endswith("]"):
                result[key] = _js_array(value, None)
            elif value.startswith("{") and value.endswith("}"):
                result[key] = _js_object(value)
            else:
                result[key] = js_literal(value.strip("'\""))
        return result
    except Exception:  # noqa: BLE001
        return code


def js_literal(text: str) -> Any:
    """A JavaScript literal read without a declared type."""
    text = text.strip()
    if text == "true":
        return True
    if text == "false":
        return False
    if (text.startswith('"') and text.endswith('"')) or (
        text.startswith("'") and text.endswith("'")
    ):
        return text[1:-1]
    return _number_or_text(text)


def _number_or_text(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text
