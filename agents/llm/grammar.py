"""A llama.cpp grammar that lets a model either call one of its tools, with arguments that
match the tool's JSON Schema, or answer in plain text.

The call part is llama.cpp's own JSON-Schema-to-GBNF conversion (as shipped in
llama-cpp-python) of ``{"name": <const>, "arguments": <the tool's schema>}`` for each
tool; we wrap it in the ``<tool_call>…</tool_call>`` markers the local backend reads back.
Text that does not start with ``<`` is an ordinary answer.
"""

from __future__ import annotations

import json
from typing import Any

# JSON Schema words llama.cpp's converter knows; anything else a tool's schema says
# (titles, examples, BFCL's "dict"/"float"/"tuple" types) is normalised or dropped.
_TYPE_ALIASES = {"dict": "object", "float": "number", "tuple": "array", "any": None}
_UNROLLED_BOUNDS = ("maxLength", "minLength", "maxItems", "minItems")
MAX_UNROLLED_BOUND = 64


def schema_normalise(schema: Any) -> Any:
    """A copy of ``schema`` in plain JSON Schema: BFCL-style type names mapped to JSON
    Schema's, unknown or empty types left open."""
    if isinstance(schema, list):
        return [schema_normalise(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "type" and isinstance(value, str):
            mapped = _TYPE_ALIASES.get(value, value)
            if mapped:
                out["type"] = mapped
        elif key in ("properties", "$defs", "definitions") and isinstance(value, dict):
            out[key] = {k: schema_normalise(v) for k, v in value.items()}
        elif key in ("items", "additionalProperties", "anyOf", "oneOf", "allOf", "not"):
            out[key] = schema_normalise(value)
        elif key in ("description", "title", "examples", "default", "optional"):
            continue  # say nothing about the shape; "default" may not even match the type
        elif key in _UNROLLED_BOUNDS and isinstance(value, int) and value > MAX_UNROLLED_BOUND:
            # llama.cpp's converter writes a length bound out one optional item per unit:
            # maxLength 100000 becomes a 100,000-deep rule that crashes llama.cpp's grammar
            # parser. Large bounds are left to the schema check the runner does anyway.
            continue
        else:
            out[key] = value
    if out.get("type") == "object" and "properties" not in out:
        out.setdefault("additionalProperties", True)
    return out


def tool_call_schema(tools: list[dict[str, Any]]) -> dict[str, Any]:
    """One ``{"name", "arguments"}`` object per tool (OpenAI ``tools`` entries)."""
    alternatives = []
    for tool in tools:
        fn = tool["function"]
        params = schema_normalise(fn.get("parameters") or {"type": "object", "properties": {}})
        alternatives.append(
            {
                "type": "object",
                "properties": {"name": {"const": fn["name"]}, "arguments": params},
                "required": ["name", "arguments"],
            }
        )
    return alternatives[0] if len(alternatives) == 1 else {"anyOf": alternatives}


def tool_call_gbnf(tools: list[dict[str, Any]], *, allow_text: bool = True) -> str:
    """The GBNF grammar: a ``<tool_call>{…}</tool_call>`` for one of ``tools``, or (when
    ``allow_text``) a plain-text answer."""
    from llama_cpp.llama_grammar import SchemaConverter

    converter = SchemaConverter(
        prop_order={"name": 0, "arguments": 1}, allow_fetch=False, dotall=False, raw_pattern=False
    )
    schema = converter.resolve_refs(tool_call_schema(tools), "tools")
    converter.visit(schema, "call")
    # JSON strings hold no raw control characters (llama.cpp's rule lets a newline in,
    # and json.loads then refuses the call).
    rules = converter.format_grammar().replace('char ::= [^"\\\\]', 'char ::= [^"\\\\\\x00-\\x1f]')
    root = 'root ::= "<tool_call>" call "</tool_call>"'
    if allow_text:
        root += " | answer\nanswer ::= [^<\\x00] [^\\x00]*"
    return f"{root}\n{rules}"


TEXT_ONLY_GBNF = "root ::= [^<\\x00] [^<\\x00]*"


def grammar_for(tools: list[dict[str, Any]], *, mode: str = "auto"):
    """A compiled LlamaGrammar (cached per tool list and mode): ``auto`` a call or text,
    ``call`` a call only, ``text`` plain text only (no call can be read back)."""
    key = (json.dumps(tools, sort_keys=True), mode)
    if key not in _cache:
        from llama_cpp.llama_grammar import LlamaGrammar

        text = (
            TEXT_ONLY_GBNF if mode == "text" else tool_call_gbnf(tools, allow_text=mode == "auto")
        )
        _cache[key] = LlamaGrammar.from_string(text, verbose=False)
    return _cache[key]


_cache: dict[tuple[str, bool], Any] = {}
