"""An evaluation item's functions, offered to the model like tools. They are never run:
an evaluation run records the calls and the scorers judge them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True)
class EvalFunction:
    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    # What the loop reads from a registered Tool: no row, no source.
    pk: ClassVar[None] = None
    source: ClassVar[str] = ""

    def openai_spec(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters or {"type": "object", "properties": {}},
            },
        }


def eval_functions(specs: list[dict[str, Any]]) -> list[EvalFunction]:
    """OpenAI ``tools`` entries (as stored on an evaluation trace) → functions."""
    return [
        EvalFunction(
            name=s["function"]["name"],
            description=s["function"].get("description", ""),
            parameters=s["function"].get("parameters") or {},
        )
        for s in specs
    ]
