"""Services for ``code`` tools: save one as a draft, test it in the sandbox, activate it
only when its own test cases pass, and let a model write one (the tool maker of LATM).

A code tool's ``config`` is ``{"source": str, "function": str, "tests": [{"arguments":
{...}, "expected": value}, ...], "last_test": {...}}``. The tests are stored with it; a
case passes when the function's JSON answer equals ``expected``.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from .executors import ToolExecutionError
from .models import Tool
from .sandbox import sandbox_run
from .validation import ToolArgumentsError, arguments_check, schema_check

NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
TEST_TIMEOUT_SECONDS = 5.0


class CodeToolError(ValueError):
    """A code tool cannot be saved or activated; the message says why."""


@dataclass
class CaseResult:
    arguments: dict[str, Any]
    expected: Any
    passed: bool
    got: Any = None
    error: str = ""


def code_tool_check(
    *, name: str, source: str, function: str, parameters: dict[str, Any], tests: list[Any]
) -> None:
    """Raise CodeToolError unless the name fits OpenAI's rule, ``source`` parses and
    defines ``function`` at top level, ``parameters`` is a JSON Schema and every test
    case is ``{"arguments": {...}, "expected": ...}`` with arguments that fit it."""
    if not NAME_RE.match(name or ""):
        raise CodeToolError(f"name {name!r} must match ^[a-zA-Z0-9_-]{{1,64}}$")
    try:
        tree = ast.parse(source or "", filename="<tool>")
    except SyntaxError as exc:
        raise CodeToolError(f"the source does not parse: {exc.msg} (line {exc.lineno})") from exc
    defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    if function not in defined:
        raise CodeToolError(f"the source defines no top-level function named {function!r}")
    try:
        schema_check(parameters)
    except ToolArgumentsError as exc:
        raise CodeToolError(str(exc)) from exc
    if not isinstance(tests, list):
        raise CodeToolError("tests must be a list of {arguments, expected} cases")
    for i, case in enumerate(tests):
        if not isinstance(case, dict) or not isinstance(case.get("arguments"), dict):
            raise CodeToolError(f"test case {i}: must be an object with an 'arguments' object")
        if "expected" not in case:
            raise CodeToolError(f"test case {i}: has no 'expected' value")
        try:
            arguments_check(schema=parameters, arguments=case["arguments"])
        except ToolArgumentsError as exc:
            raise CodeToolError(f"test case {i}: {exc}") from exc


def code_tool_test(
    *,
    source: str,
    function: str,
    tests: list[dict[str, Any]],
    timeout: float = TEST_TIMEOUT_SECONDS,
) -> list[CaseResult]:
    """Run every test case in the sandbox; never raises for a failing case."""
    results = []
    for case in tests:
        result = CaseResult(arguments=case["arguments"], expected=case["expected"], passed=False)
        try:
            result.got = sandbox_run(
                source=source, function=function, arguments=case["arguments"], timeout=timeout
            )
            result.passed = result.got == case["expected"]
        except ToolExecutionError as exc:
            result.error = str(exc)
        results.append(result)
    return results


def _summary(results: list[CaseResult]) -> dict[str, Any]:
    return {
        "at": timezone.now().isoformat(),
        "passed": sum(r.passed for r in results),
        "total": len(results),
        "cases": [asdict(r) for r in results],
    }


def code_tool_save(
    *,
    name: str,
    description: str,
    parameters: dict[str, Any],
    source: str,
    function: str,
    tests: list[dict[str, Any]],
    results: list[CaseResult] | None = None,
) -> Tool:
    """Create or update the code tool ``name`` as a draft (an edited active tool goes
    back to draft: its new code has not passed its tests yet)."""
    code_tool_check(name=name, source=source, function=function, parameters=parameters, tests=tests)
    config: dict[str, Any] = {"source": source, "function": function, "tests": tests}
    if results is not None:
        config["last_test"] = _summary(results)
    with transaction.atomic():
        existing = Tool.objects.select_for_update().filter(name=name, source="").first()
        if existing is not None and existing.kind != Tool.Kind.CODE:
            raise CodeToolError(f"a {existing.get_kind_display()} tool is already named {name!r}")
        tool, _ = Tool.objects.update_or_create(
            name=name,
            source="",
            defaults={
                "kind": Tool.Kind.CODE,
                "description": description,
                "parameters": parameters,
                "config": config,
                "status": Tool.Status.DRAFT,
            },
        )
    return tool


def code_tool_activate(*, tool: Tool) -> list[CaseResult]:
    """Run the tool's stored tests in the sandbox; when there is at least one and all
    pass, make it active. Otherwise raise CodeToolError and leave it a draft. The results
    are stored on the tool either way."""
    if tool.kind != Tool.Kind.CODE:
        raise CodeToolError(f"{tool.name!r} is not a code tool")
    config = tool.config or {}
    tests = config.get("tests") or []
    if not tests:
        raise CodeToolError("a code tool needs at least one test case before it can be activated")
    results = code_tool_test(source=config["source"], function=config["function"], tests=tests)
    passed = all(r.passed for r in results)
    with transaction.atomic():
        locked = Tool.objects.select_for_update().get(pk=tool.pk)
        if locked.config.get("source") != config["source"]:
            raise CodeToolError("the tool's code changed while it was being tested; test again")
        locked.config = {**locked.config, "last_test": _summary(results)}
        if passed:
            locked.status = Tool.Status.ACTIVE
        locked.save(update_fields=["config", "status", "updated_at"])
    tool.refresh_from_db()
    if not passed:
        failed = [r for r in results if not r.passed]
        first = failed[0]
        why = first.error or f"got {json.dumps(first.got)}, expected {json.dumps(first.expected)}"
        raise CodeToolError(
            f"{len(failed)} of {len(results)} test cases failed; it stays a draft "
            f"(first: arguments {json.dumps(first.arguments)}: {why})"
        )
    return results


# --- the tool maker (LATM) -------------------------------------------------------------

MAKER_PROMPT = """You write one Python tool that other models will call.

Task: {task}

Examples (arguments -> expected result):
{examples}

Reply with one JSON object and nothing else:
{{"name": "snake_case_name", "description": "what it does, for a model choosing tools",
  "parameters": {{JSON Schema of the arguments object}},
  "function": "the function's name", "source": "def ...: ... (standard library only)"}}
The function takes the arguments as keyword arguments and returns a JSON value.
"""

RETRY_PROMPT = """{prompt}
Your previous reply:
{reply}

It failed in the sandbox:
{failures}
Reply with the corrected JSON object only."""


@dataclass
class MadeTool:
    tool: Tool | None
    results: list[CaseResult]
    attempts: int
    error: str = ""


def _parse_reply(reply: str) -> dict[str, Any]:
    text = reply.strip()
    fence = re.search(r"```(?:json)?\s*(\{.*\})\s*```", text, re.S)
    if fence:
        text = fence.group(1)
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < start:
        raise CodeToolError("the model's reply holds no JSON object")
    try:
        spec = json.loads(text[start : end + 1])
    except json.JSONDecodeError as exc:
        raise CodeToolError(f"the model's reply is not valid JSON: {exc.msg}") from exc
    missing = [k for k in ("name", "parameters", "function", "source") if k not in spec]
    if missing:
        raise CodeToolError(f"the model's reply lacks {', '.join(missing)}")
    return spec


def code_tool_make(
    *,
    task: str,
    examples: list[dict[str, Any]],
    complete: Callable[[str], str],
    name: str = "",
    attempts: int = 2,
) -> MadeTool:
    """Ask a model (``complete(prompt) -> reply``, any endpoint: the caller provides the
    glue) to write a code tool for ``task``; test it in the sandbox on ``examples``
    (``[{"arguments": {...}, "expected": ...}]``, stored as its tests); feed failures back
    for up to ``attempts`` tries; save the last valid one as a draft for a person to
    approve (``code_tool_activate``). Never activates anything itself."""
    if not task.strip():
        raise CodeToolError("describe the task the tool should do")
    if not examples:
        raise CodeToolError("give at least one example (arguments and expected result)")
    prompt = MAKER_PROMPT.format(
        task=task,
        examples="\n".join(
            f"- {json.dumps(e.get('arguments'))} -> {json.dumps(e.get('expected'))}"
            for e in examples
        ),
    )
    first_prompt = prompt
    made = MadeTool(tool=None, results=[], attempts=0)
    for attempt in range(1, attempts + 1):
        made.attempts = attempt
        reply = complete(prompt)
        try:
            spec = _parse_reply(reply)
            tool_name = name or str(spec["name"])
            code_tool_check(
                name=tool_name,
                source=spec["source"],
                function=spec["function"],
                parameters=spec["parameters"],
                tests=examples,
            )
        except CodeToolError as exc:
            made.error = str(exc)
            prompt = RETRY_PROMPT.format(prompt=first_prompt, reply=reply, failures=f"- {exc}")
            continue
        results = code_tool_test(source=spec["source"], function=spec["function"], tests=examples)
        made.tool = code_tool_save(
            name=tool_name,
            description=str(spec.get("description", "")),
            parameters=spec["parameters"],
            source=spec["source"],
            function=spec["function"],
            tests=examples,
            results=results,
        )
        made.results, made.error = results, ""
        failed = [r for r in results if not r.passed]
        if not failed:
            break
        made.error = f"{len(failed)} of {len(results)} examples failed"
        prompt = RETRY_PROMPT.format(
            prompt=first_prompt,
            reply=reply,
            failures="\n".join(
                f"- {json.dumps(r.arguments)}: "
                + (r.error or f"got {json.dumps(r.got)}, expected {json.dumps(r.expected)}")
                for r in failed
            ),
        )
    return made
