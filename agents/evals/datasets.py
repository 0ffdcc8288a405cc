"""Reading evaluation datasets: BFCL's files and our own JSON Lines. Pure functions, no
Django: they turn file lines into ``ItemData`` or raise DatasetFileError naming the line.

Our JSONL format, one item a line::

    {"id": "optional", "question": "text" | "messages": [{"role", "content"}, ...],
     "functions": [{"name", "description", "parameters": <JSON Schema>}],   # optional
     "expected_calls": [{"name": ..., "arguments": {...}}],                 # optional
     "expected_answer": "text",                                              # optional
     "category": "optional label"}

BFCL's: the ``BFCL_v4_<category>.json`` question file (JSON Lines with ``id``, ``question``
— a list of turns of chat messages — and ``function``) and, for the categories that have
one, the ``possible_answer/`` file with ``{"id", "ground_truth"}`` per line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

FORMAT_BFCL = "bfcl"
FORMAT_JSONL = "jsonl"

# BFCL's parameter types, as the JSON Schema types a model endpoint is shown.
BFCL_TO_JSON_SCHEMA = {
    "integer": "integer",
    "number": "number",
    "float": "number",
    "string": "string",
    "boolean": "boolean",
    "bool": "boolean",
    "array": "array",
    "list": "array",
    "dict": "object",
    "object": "object",
    "tuple": "array",
    "any": "string",
    "byte": "integer",
    "short": "integer",
    "long": "integer",
    "double": "number",
    "char": "string",
    "ArrayList": "array",
    "Array": "array",
    "HashMap": "object",
    "Hashtable": "object",
    "Queue": "array",
    "Stack": "array",
    "Any": "string",
    "String": "string",
    "Bigint": "integer",
    "Boolean": "boolean",
    "Set": "array",
}
_TOOL_NAME_BAD = re.compile(r"[^a-zA-Z0-9_-]")


class DatasetFileError(ValueError):
    """A dataset file cannot be imported; the message names the file and line."""


@dataclass
class ItemData:
    external_id: str
    messages: list[dict[str, Any]]
    functions: list[dict[str, Any]] = field(default_factory=list)
    expected_calls: Any = None
    expected_answer: str = ""
    category: str = ""
    language: str = "python"
    function_format: str = FORMAT_JSONL


def _lines(text_lines: Iterable[str], where: str) -> Iterable[tuple[int, dict[str, Any]]]:
    for number, line in enumerate(text_lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetFileError(
                f"{where}, line {number}: not JSON ({exc.msg} at column {exc.colno})"
            ) from exc
        if not isinstance(row, dict):
            raise DatasetFileError(f"{where}, line {number}: expected a JSON object")
        yield number, row


def bfcl_category(case_id: str) -> str:
    """``simple_python_12`` → ``simple_python``; ``live_simple_3-2-1`` → ``live_simple``."""
    return case_id.rsplit("_", 1)[0] if "_" in case_id else case_id


def bfcl_language(category: str) -> str:
    if "javascript" in category:
        return "javascript"
    if "java" in category:
        return "java"
    return "python"


def bfcl_items_parse(
    questions: Iterable[str],
    answers: Iterable[str] | None = None,
    *,
    questions_name: str = "questions",
    answers_name: str = "answers",
) -> list[ItemData]:
    """BFCL question lines (+ possible-answer lines) → items. Every question of an AST
    category needs its answer; irrelevance and relevance cases need none."""
    truth: dict[str, Any] = {}
    if answers is not None:
        for number, row in _lines(answers, answers_name):
            if "id" not in row or "ground_truth" not in row:
                raise DatasetFileError(
                    f"{answers_name}, line {number}: needs 'id' and 'ground_truth'"
                )
            truth[str(row["id"])] = row["ground_truth"]
    items = []
    for number, row in _lines(questions, questions_name):
        where = f"{questions_name}, line {number}"
        for key in ("id", "question", "function"):
            if key not in row:
                raise DatasetFileError(f"{where}: missing field {key!r}")
        case_id = str(row["id"])
        turns = row["question"]
        if not (isinstance(turns, list) and turns and isinstance(turns[0], list)):
            raise DatasetFileError(f"{where}: 'question' must be a list of turns of messages")
        messages = [m for turn in turns for m in turn]
        if not all(isinstance(m, dict) and "role" in m and "content" in m for m in messages):
            raise DatasetFileError(f"{where}: every message needs 'role' and 'content'")
        functions = row["function"]
        if not isinstance(functions, list) or not all(
            isinstance(f, dict) and "name" in f for f in functions
        ):
            raise DatasetFileError(
                f"{where}: 'function' must be a list of function docs with names"
            )
        category = bfcl_category(case_id)
        needs_answer = "relevance" not in category
        if needs_answer and case_id not in truth:
            hint = "" if answers is not None else " (pass the possible_answer file with --answers)"
            raise DatasetFileError(f"{where}: no possible answer for {case_id!r}{hint}")
        items.append(
            ItemData(
                external_id=case_id,
                messages=messages,
                functions=functions,
                expected_calls=truth.get(case_id),
                category=category,
                language=bfcl_language(category),
                function_format=FORMAT_BFCL,
            )
        )
    return items


def jsonl_items_parse(lines: Iterable[str], *, name: str = "file") -> list[ItemData]:
    """Our own JSONL format → items."""
    items = []
    for number, row in _lines(lines, name):
        where = f"{name}, line {number}"
        if "messages" in row:
            messages = row["messages"]
            if not isinstance(messages, list) or not all(
                isinstance(m, dict) and "role" in m for m in messages
            ):
                raise DatasetFileError(f"{where}: 'messages' must be a list of chat messages")
        elif isinstance(row.get("question"), str) and row["question"].strip():
            messages = [{"role": "user", "content": row["question"]}]
        else:
            raise DatasetFileError(f"{where}: needs 'messages' or a non-empty 'question'")
        functions = row.get("functions") or []
        if not isinstance(functions, list) or not all(
            isinstance(f, dict) and isinstance(f.get("name"), str) for f in functions
        ):
            raise DatasetFileError(f"{where}: 'functions' must be a list of {{name, parameters}}")
        expected = row.get("expected_calls")
        if expected is not None and (
            not isinstance(expected, list)
            or not all(isinstance(c, dict) and isinstance(c.get("name"), str) for c in expected)
        ):
            raise DatasetFileError(
                f"{where}: 'expected_calls' must be a list of {{name, arguments}}"
            )
        answer = row.get("expected_answer", "")
        if not isinstance(answer, str):
            raise DatasetFileError(f"{where}: 'expected_answer' must be text")
        if expected is None and not answer and "category" not in row:
            raise DatasetFileError(
                f"{where}: give 'expected_calls' or 'expected_answer' (or a 'category' such as irrelevance)"
            )
        items.append(
            ItemData(
                external_id=str(row.get("id") or number),
                messages=messages,
                functions=functions,
                expected_calls=expected,
                expected_answer=answer,
                category=str(row.get("category") or ""),
                function_format=FORMAT_JSONL,
            )
        )
    return items


def _schema_from_bfcl(schema: Any) -> Any:
    if isinstance(schema, dict):
        out = {k: _schema_from_bfcl(v) for k, v in schema.items() if k != "type"}
        if "type" in schema:
            out["type"] = BFCL_TO_JSON_SCHEMA.get(schema["type"], "string")
        if "properties" in schema:
            out["properties"] = {k: _schema_from_bfcl(v) for k, v in schema["properties"].items()}
        return out
    if isinstance(schema, list):
        return [_schema_from_bfcl(v) for v in schema]
    return schema


def tool_name_for(name: str) -> str:
    """A function's name as OpenAI-style endpoints accept it (``^[a-zA-Z0-9_-]{1,64}$``);
    BFCL's own OpenAI handler writes ``math.factorial`` as ``math_factorial`` too."""
    return _TOOL_NAME_BAD.sub("_", name)[:64] or "function"


def item_tool_specs(functions: list[dict[str, Any]], function_format: str) -> list[dict[str, Any]]:
    """An item's functions as OpenAI ``tools`` entries."""
    specs = []
    for function in functions:
        parameters = function.get("parameters") or {"type": "object", "properties": {}}
        if function_format == FORMAT_BFCL:
            parameters = _schema_from_bfcl(parameters)
        specs.append(
            {
                "type": "function",
                "function": {
                    "name": tool_name_for(function["name"]),
                    "description": function.get("description", ""),
                    "parameters": parameters,
                },
            }
        )
    return specs
