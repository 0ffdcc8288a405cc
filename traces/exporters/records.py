"""What the exporters read: plain records of labelled traces, built from the database
by ``traces.annotation_selectors.trace_records`` and nothing else. Exporters are pure
functions of these, so the same records always give the same rows."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

# Ties are settled towards the more cautious verdict: a step one of two people
# called bad is not trained on as good.
CAUTION = {"bad": 0, "neutral": 1, "good": 2}


@dataclass(frozen=True)
class LabelRecord:
    verdict: str
    category: str | None = None
    corrected_call: dict[str, Any] | None = None
    author: str = ""
    gold: bool = False
    version_key: tuple = ()


@dataclass
class StepRecord:
    id: int
    seq: int
    kind: str
    name: str = ""
    input: Any = None
    output: Any = None
    error: str = ""
    tool_call_id: str = ""
    parent_seq: int | None = None
    schema: dict[str, Any] | None = None
    labels: list[LabelRecord] = field(default_factory=list)

    @property
    def label(self) -> LabelRecord | None:
        return label_resolve(self.labels)


@dataclass
class TraceRecord:
    trace_id: str
    input: str
    steps: list[StepRecord]
    labels: list[LabelRecord] = field(default_factory=list)
    tool_schemas: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def label(self) -> LabelRecord | None:
        return label_resolve(self.labels)


def canonical(value: Any) -> Any:
    """``value`` with every object's keys in sorted order. PostgreSQL's jsonb keeps keys
    in its own order and SQLite keeps them as written; sorted, the same data gives the
    same bytes on both."""
    if isinstance(value, dict):
        return {k: canonical(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [canonical(v) for v in value]
    return value


def label_resolve(labels: list[LabelRecord]) -> LabelRecord | None:
    """The label a thing is trained on: the gold (adjudicated) one if any, else the
    majority verdict of the people (ties → the more cautious), with the category most
    given for it and the latest corrected call among those labels."""
    if not labels:
        return None
    gold = [lab for lab in labels if lab.gold]
    if gold:
        return gold[0]
    counts = Counter(lab.verdict for lab in labels)
    verdict = min(counts, key=lambda v: (-counts[v], CAUTION.get(v, 9)))
    chosen = [lab for lab in labels if lab.verdict == verdict]
    categories = Counter(lab.category for lab in chosen if lab.category)
    category = min(categories, key=lambda c: (-categories[c], c)) if categories else None
    calls = sorted((lab for lab in chosen if lab.corrected_call), key=lambda lab: lab.version_key)
    return LabelRecord(
        verdict=verdict,
        category=category,
        corrected_call=calls[-1].corrected_call if calls else None,
    )
