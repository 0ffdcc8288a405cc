"""The labels of a step, for the trace page (and anything else that shows a step)."""

from __future__ import annotations

from django import template

from traces.annotation_selectors import labels_for

register = template.Library()


@register.inclusion_tag("traces/_step_labels.html")
def step_labels(step) -> dict:
    """``{% step_labels step %}``: the step's labels, in the element live updates replace."""
    return {"labels_step": step, "labels": labels_for(trace_id=step.trace_id, step_id=step.id)}


@register.inclusion_tag("traces/_step_labels.html")
def trace_labels(trace) -> dict:
    """``{% trace_labels trace %}``: the whole trace's own labels (verdict and score)."""
    return {"labels_step": None, "labels": labels_for(trace_id=trace.id, step_id=None)}
