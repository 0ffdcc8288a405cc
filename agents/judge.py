"""A judge model labels queue items as suggestions (pre-labelling).

For each item of a queue that names a judge ModelEndpoint, the model gets the queue's
rubric, the step and what came before it, and answers a JSON object; what it says is
stored through ``traces.annotation_services.suggestion_record`` — apart from human
labels, never counted as one.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from traces.annotation_models import AnnotationQueue, ErrorCategory
from traces.annotation_services import LabelError, suggestion_record
from traces.models import Step

from .llm import ModelError, backend_for
from .models import ModelEndpoint

logger = logging.getLogger(__name__)

ANSWER = re.compile(r"\{.*\}", re.DOTALL)


def _step_text(step: Step) -> str:
    parts = [f"Step #{step.seq}: {step.kind} {step.name}".strip()]
    if step.input is not None and step.kind != Step.Kind.MODEL_CALL:
        parts.append(f"input: {json.dumps(step.input, default=str)[:2000]}")
    if step.output is not None:
        parts.append(f"output: {json.dumps(step.output, default=str)[:2000]}")
    if step.error:
        parts.append(f"error: {step.error[:1000]}")
    if step.metadata.get("schema"):
        parts.append(f"tool schema: {json.dumps(step.metadata['schema'])[:2000]}")
    return "\n".join(parts)


def judge_messages(
    *, queue: AnnotationQueue, step: Step, categories: list[str]
) -> list[dict[str, Any]]:
    earlier = Step.objects.filter(trace_id=step.trace_id, seq__lt=step.seq).order_by("seq")
    history = "\n\n".join(_step_text(s) for s in earlier[:50])
    system = (
        "You judge one step of a tool-using agent's run. "
        + (queue.judge_rubric.strip() + " " if queue.judge_rubric.strip() else "")
        + 'Answer only with a JSON object: {"verdict": "good" | "bad" | "neutral", '
        f'"category": one of {categories} or null, '
        '"corrected_call": {"name": tool, "arguments": {...}} or null (tool calls only), '
        '"rationale": "one sentence"}.'
    )
    user = f"Task: {step.trace.input}\n\nEarlier steps:\n{history or '(none)'}\n\nJudge this step:\n{_step_text(step)}"
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def judge_answer_parse(text: str) -> dict[str, Any]:
    """The JSON object in the model's answer (models often wrap it in prose)."""
    match = ANSWER.search(text or "")
    if not match:
        raise ValueError(f"no JSON object in the judge's answer: {text[:200]!r}")
    data = json.loads(match.group(0))
    if not isinstance(data, dict):
        raise ValueError("the judge's answer is not a JSON object")
    return data


def queue_suggest(*, queue_id: int) -> dict[str, int]:
    """Ask the queue's judge about every item; returns how many were stored and failed.
    An item the judge answers badly is skipped (and logged), not the whole queue."""
    queue = AnnotationQueue.objects.get(pk=queue_id)
    endpoint = ModelEndpoint.objects.get(name=queue.judge_endpoint)
    backend = backend_for(endpoint)
    categories = list(ErrorCategory.objects.filter(active=True).values_list("slug", flat=True))
    stored = failed = 0
    for item in queue.items.select_related("step__trace").order_by("position"):
        try:
            reply = backend.complete(
                judge_messages(queue=queue, step=item.step, categories=categories), []
            )
            answer = judge_answer_parse(reply.content)
            suggestion_record(
                item=item,
                endpoint=endpoint.name,
                verdict=str(answer.get("verdict", "")),
                category=answer.get("category") or None,
                corrected_call=answer.get("corrected_call") or None,
                rationale=str(answer.get("rationale") or ""),
            )
            stored += 1
        except (ModelError, ValueError, LabelError) as exc:
            logger.warning(
                "judge %s on queue %s item %s: %s", endpoint.name, queue.id, item.id, exc
            )
            failed += 1
    return {"stored": stored, "failed": failed}
