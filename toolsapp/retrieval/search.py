"""The built-in ``tool_search`` tool: how an agent with a large toolset finds its tools.

An agent whose toolset is larger than ``TOOLTRAIL_TOOL_SEARCH_THRESHOLD`` is not shown
every tool. It is shown the ``TOOLTRAIL_TOOL_SEARCH_TOP_K`` tools that best match the
user's request, plus ``tool_search``; calling ``tool_search`` with a description of what
it needs returns the best matches of the toolset, and the strategy offers those tools on
the next model turn. The tool is not a row of the ``Tool`` table: it searches the
toolset of the run that offers it (``ToolSearch.allowed``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..models import Tool
from ..validation import arguments_check

TOOL_SEARCH_NAME = "tool_search"
TOOL_SEARCH_MAX_K = 20
TOOL_SEARCH_DESCRIPTION = (
    "Find more tools. Only some of the available tools are offered at a time: describe "
    "in words what you need a tool to do, and the best matching tools are returned and "
    "become callable from your next turn. Ask again with other words if none fits."
)


def tool_search_parameters(default_k: int) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "query": {
                "type": "string",
                "minLength": 1,
                "maxLength": 500,
                "description": "What the tool should do, e.g. 'convert currencies'.",
            },
            "k": {
                "type": "integer",
                "minimum": 1,
                "maximum": TOOL_SEARCH_MAX_K,
                "default": default_k,
                "description": "How many tools to return.",
            },
        },
        "required": ["query"],
        "additionalProperties": False,
    }


@dataclass
class ToolSearch:
    """``tool_search`` bound to one run's toolset."""

    allowed: list[int]
    k: int
    method: str

    def __post_init__(self) -> None:
        # An unsaved Tool: the strategy validates, offers and records it like any other.
        self.tool = Tool(
            name=TOOL_SEARCH_NAME,
            description=TOOL_SEARCH_DESCRIPTION,
            parameters=tool_search_parameters(self.k),
            kind=Tool.Kind.PYTHON,
        )

    def find(self, query: str, *, k: int | None = None) -> list[Tool]:
        """The toolset's best ``k`` tools for ``query``, best first."""
        from ..selectors import tool_search_rank

        return tool_search_rank(
            query=query, allowed=self.allowed, k=k or self.k, method=self.method
        )

    def call(self, arguments: dict[str, Any]) -> tuple[dict[str, Any], list[Tool]]:
        """Run a ``tool_search`` call: (what the model reads, the tools found).
        Raises ToolArgumentsError for arguments that break the schema."""
        arguments_check(schema=self.tool.parameters, arguments=arguments)
        found = self.find(arguments["query"], k=arguments.get("k"))
        result = {
            "tools": [{"name": t.name, "description": t.description} for t in found],
            "note": "These tools can be called from your next turn."
            if found
            else "No tool matches; try other words.",
        }
        return result, found
