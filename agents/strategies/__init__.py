"""Strategies: how an agent turns model replies into tool calls and an answer.

One module per strategy, registered here; ``Agent.strategy``'s choices come from this
table, so adding a strategy touches its module and one line below.
"""

from .base import Outcome, RunCancelled
from .decide_first import DecideFirstLoop
from .dfsdt import DfsdtSearch
from .function_calling import FunctionCallingLoop
from .planner_caller_summarizer import PlannerCallerSummarizer
from .self_refine import SelfRefineLoop

STRATEGIES = {
    "function_calling": FunctionCallingLoop,
    "self_refine": SelfRefineLoop,
    "dfsdt": DfsdtSearch,
    "planner_caller_summarizer": PlannerCallerSummarizer,
    "decide_first": DecideFirstLoop,
}


def strategy_choices() -> list[tuple[str, str]]:
    return [(key, cls.label) for key, cls in STRATEGIES.items()]


__all__ = ["STRATEGIES", "FunctionCallingLoop", "Outcome", "RunCancelled", "strategy_choices"]
