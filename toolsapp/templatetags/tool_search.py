"""``{{ text|highlight_terms:query }}``: the text, escaped, with the words that match a
search query's terms wrapped in ``<mark>`` — by the same term rules the index uses, so
"rooms" marks "Room" and "water quality" marks both halves of ``getWaterQuality``."""

from __future__ import annotations

import re

from django import template
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from toolsapp.retrieval.text import terms

register = template.Library()

# Words as the index splits them: camelCase humps, runs of capitals, digits.
_PIECE = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+")


@register.filter
def highlight_terms(text: str, query: str) -> SafeString:
    text = str(text or "")
    wanted = set(terms(str(query or "")))
    if not wanted:
        return escape(text)
    out, last = [], 0
    for match in _PIECE.finditer(text):
        found = terms(match.group())
        if found and found[0] in wanted:
            out.append(escape(text[last : match.start()]))
            out.append(f"<mark>{escape(match.group())}</mark>")
            last = match.end()
    out.append(escape(text[last:]))
    return mark_safe("".join(out))
