"""LLM-as-judge: a model grades an answer against a rubric.

Pure: the caller passes ``complete(prompt) -> str`` (any ModelEndpoint behind it). The
judge must answer JSON ``{"score": 0..1, "reason": "..."}``; anything else is a clear
judge error rather than a silent zero."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from .bfcl_ast import Verdict

DEFAULT_RUBRIC = (
    "Score 1 if the answer fully and correctly does what the task asks, 0.5 if partly, 0 if "
    "not at all or if it invents facts."
)


def judge_prompt(
    *, task: str, answer: str, rubric: str = DEFAULT_RUBRIC, reference: str = ""
) -> str:
    parts = [
        "You grade an AI agent's answer.",
        f"Rubric: {rubric}",
        f"Task: {task}",
    ]
    if reference:
        parts.append(f"Reference answer: {reference}")
    parts += [
        f"Agent's answer: {answer}",
        'Reply with JSON only: {"score": <number between 0 and 1>, "reason": "<one sentence>"}',
    ]
    return "\n\n".join(parts)


def judge_parse(text: str) -> tuple[float, str]:
    match = re.search(r"\{.*\}", text, re.DOTALL)
    if not match:
        raise ValueError(f"the judge did not answer JSON: {text[:200]!r}")
    try:
        data = json.loads(match.group(0))
        score = float(data["score"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"the judge's JSON has no numeric score: {text[:200]!r}") from exc
    if not 0 <= score <= 1:
        raise ValueError(f"the judge's score {score} is outside 0..1")
    return score, str(data.get("reason", ""))


def judge_grade(
    *,
    complete: Callable[[str], str],
    task: str,
    answer: str,
    rubric: str = DEFAULT_RUBRIC,
    reference: str = "",
) -> tuple[float, str]:
    """(score 0..1, reason) from the judge; ValueError when its answer is unusable."""
    return judge_parse(
        complete(judge_prompt(task=task, answer=answer, rubric=rubric, reference=reference))
    )


def llm_judge(
    *,
    complete: Callable[[str], str],
    task: str,
    answer: str,
    rubric: str = DEFAULT_RUBRIC,
    reference: str = "",
    pass_at: float = 0.5,
) -> Verdict:
    try:
        score, reason = judge_grade(
            complete=complete, task=task, answer=answer, rubric=rubric, reference=reference
        )
    except ValueError as exc:
        return Verdict(False, "judge:unusable_answer", [str(exc)])
    passed = score >= pass_at
    return Verdict(passed, None if passed else "judge:low_score", [f"score {score:g}: {reason}"])
