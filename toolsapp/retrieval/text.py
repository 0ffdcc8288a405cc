"""What of a tool is indexed, and how text is cut into terms.

A tool is found by its name, its description and the names and descriptions of its
arguments. Names are identifiers (``getWaterQuality``, ``unit_convert``), so they are
split into words before either index sees them: a person asks for "water quality", not
for "getwaterquality".
"""

from __future__ import annotations

import re
from typing import Any

# Stop words: the common English words that carry no meaning for finding a tool, plus the
# words every tool description is made of ("the", "given", "get" would match everything).
STOP_WORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "for",
        "from",
        "has",
        "have",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "that",
        "the",
        "their",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "was",
        "were",
        "will",
        "with",
        "which",
        "what",
        "when",
        "where",
        "who",
        "how",
        "can",
        "do",
        "does",
        "i",
        "me",
        "my",
        "please",
        "you",
        "your",
        "we",
        "our",
        "should",
        "would",
        "could",
    ]
)

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_WORD = re.compile(r"[A-Za-z0-9]+")
# Describing a parameter's own schema would flood the text; the top-level arguments
# (and one level of nested object properties) say what a tool takes.
MAX_ARGUMENTS = 30


def identifier_words(name: str) -> str:
    """``getWaterQuality`` -> ``get Water Quality``; ``unit_convert`` -> ``unit convert``."""
    return " ".join(_CAMEL.sub(" ", part) for part in _WORD.findall(name))


def _stem(term: str) -> str:
    # A light plural/verb-ending fold, enough for "rooms"/"room", "analyzes"/"analyze";
    # a full stemmer is not installed and this keeps terms readable for highlighting.
    if len(term) > 4 and term.endswith("ies"):
        return term[:-3] + "y"
    if len(term) > 3 and term.endswith("s") and not term.endswith(("ss", "us", "is")):
        return term[:-1]
    return term


def terms(text: str) -> list[str]:
    """The lexical terms of a text: identifier-split, lower-cased, stop words out."""
    out = []
    for word in _WORD.findall(identifier_words(text)):
        word = word.lower()
        if len(word) > 1 and word not in STOP_WORDS:
            out.append(_stem(word))
    return out


# A request often asks for several things, one sentence each ("Get a quote for ... After
# that, create ... Finally, retrieve ..."), each a different tool.
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+(?=[A-Z])|\n+")
MAX_REQUESTS = 8


def requests(query: str) -> list[str]:
    """The sentences of a query, each a request of its own (very short ones joined to the
    one before). One sentence: just the query."""
    parts: list[str] = []
    for part in _SENTENCE_END.split(query):
        part = part.strip()
        if not part:
            continue
        if parts and len(part.split()) < 4:
            parts[-1] = f"{parts[-1]} {part}"
        else:
            parts.append(part)
    return parts[:MAX_REQUESTS] or [query]


def parameters_text(parameters: dict[str, Any] | None) -> str:
    """The argument names and descriptions of a JSON Schema, one ``name: description``
    a line, in the schema's order."""
    lines: list[str] = []
    properties = (parameters or {}).get("properties") or {}
    if not isinstance(properties, dict):
        return ""
    for arg, schema in list(properties.items())[:MAX_ARGUMENTS]:
        schema = schema if isinstance(schema, dict) else {}
        description = str(schema.get("description") or schema.get("title") or "").strip()
        line = identifier_words(str(arg))
        lines.append(f"{line}: {description}" if description else line)
    return "\n".join(lines)


def tool_document(*, name: str, description: str, parameters: dict[str, Any] | None) -> str:
    """The text indexed for a tool: its name in words, its description, its arguments."""
    head = identifier_words(name)
    parts = [f"{head}: {description.strip()}" if description.strip() else head]
    arguments = parameters_text(parameters)
    if arguments:
        parts.append(arguments)
    return "\n".join(parts)
