"""Writes and actions on tools: syncing built-ins, and calling a tool with validation."""

from __future__ import annotations

import json
import threading
from typing import Any

from django.conf import settings
from django.db import transaction

from .builtin import BUILTIN_TOOLS
from .executors import ToolCancelled, ToolExecutionError, executor_for
from .models import Tool, Toolset
from .validation import arguments_check, schema_check


@transaction.atomic
def builtin_tools_sync() -> list[Tool]:
    """Create or update the built-in Python tools, and the ``builtin`` toolset holding them."""
    tools = []
    for spec in BUILTIN_TOOLS:
        schema_check(spec["parameters"])
        tool, _ = Tool.objects.update_or_create(
            name=spec["name"],
            source="",
            defaults={
                "description": spec["description"],
                "parameters": spec["parameters"],
                "kind": Tool.Kind.PYTHON,
                "config": {"callable": spec["callable"]},
            },
        )
        tools.append(tool)
    toolset, _ = Toolset.objects.get_or_create(
        slug="builtin",
        defaults={
            "name": "Built-in tools",
            "description": "Calculator, clock, units, echo, sleep.",
        },
    )
    toolset.tools.add(*tools)
    return tools


def tool_call_check(*, tool: Tool, arguments: dict[str, Any]) -> None:
    """Raise ToolArgumentsError if the arguments break the tool's schema."""
    arguments_check(schema=tool.parameters, arguments=arguments)


def tool_execute(
    *,
    tool: Tool,
    arguments: dict[str, Any],
    timeout: float | None = None,
    cancel: threading.Event | None = None,
) -> Any:
    """Validate, then run one call. Returns a JSON-able result.

    Raises ToolArgumentsError for bad arguments (nothing runs), ToolTimeout when the
    tool overruns (it is stopped), ToolCancelled within a second of ``cancel`` being set
    during the call (it is stopped), ToolExecutionError when it fails.
    """
    tool_call_check(tool=tool, arguments=arguments)
    if not tool.is_active:
        raise ToolExecutionError(f"tool {tool.name!r} is {tool.get_status_display().lower()}")
    executor = executor_for(tool.kind)
    if executor is None:
        raise ToolExecutionError(f"tools of kind {str(tool.kind)!r} cannot be run yet")
    limit = min(timeout or tool.timeout_seconds, settings.TOOLTRAIL_TOOL_TIMEOUT_SECONDS)
    if cancel is not None and cancel.is_set():
        raise ToolCancelled("the tool call was cancelled before it started")
    result = executor(tool, arguments, limit, cancel)
    try:
        json.dumps(result)
    except (TypeError, ValueError):
        result = repr(result)
    return result


class ToolsetInUse(Exception):
    """A toolset that agents use cannot be deleted; the message names them."""


@transaction.atomic
def toolset_duplicate(*, toolset: Toolset) -> Toolset:
    """A copy of ``toolset`` with the same tools under a free slug (``<slug>-copy``)."""
    from tooltrail.copies import copy_name

    slug = copy_name(model=Toolset, field="slug", base=toolset.slug, max_length=50)
    copy = Toolset.objects.create(
        name=f"{toolset.name} (copy)"[:100], slug=slug, description=toolset.description
    )
    copy.tools.set(toolset.tools.all())
    return copy


def toolset_delete(*, toolset: Toolset) -> None:
    """Delete a toolset no agent uses (raises ToolsetInUse naming the agents)."""
    users = [str(a) for a in toolset.agents.all()]
    if users:
        raise ToolsetInUse(f"{toolset.name} is used by {', '.join(users)}: change them first")
    toolset.delete()
