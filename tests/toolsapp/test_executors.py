"""Running one tool call: validation first, then the executor, with a time limit."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from toolsapp.executors import ToolCancelled, ToolExecutionError, ToolTimeout
from toolsapp.models import Tool
from toolsapp.services import builtin_tools_sync, python_tool_register, tool_execute
from toolsapp.validation import ToolArgumentsError

pytestmark = pytest.mark.django_db

# Tools run in a child process: what they remember must be written down where the test
# can read it. The child inherits this path from the test process.
CALLS_FILE: Path | None = None


def record_call(**arguments):
    """A real python tool target: remembers that it ran."""
    with CALLS_FILE.open("a") as f:
        f.write(f"{arguments}\n")
    return {"ran": True}


def runaway(**arguments):
    """A tool stuck in a busy loop, with a side effect it repeats while it runs."""
    while True:
        with CALLS_FILE.open("a") as f:
            f.write(f"{os.getpid()}\n")
        for _ in range(200_000):
            pass


def die(**arguments):
    os.kill(os.getpid(), signal.SIGTERM)


def calls() -> list[str]:
    return CALLS_FILE.read_text().splitlines() if CALLS_FILE.exists() else []


@pytest.fixture(autouse=True)
def calls_file(tmp_path):
    global CALLS_FILE
    CALLS_FILE = tmp_path / "calls.txt"
    yield CALLS_FILE
    CALLS_FILE = None


def fail(**arguments):
    raise RuntimeError("the disk is full")


def answer_with_an_object(**arguments):
    return {1, 2}


@pytest.fixture
def builtins():
    return {t.name: t for t in builtin_tools_sync()}


def python_tool(name: str, target: str, **fields) -> Tool:
    return Tool.objects.create(
        name=name,
        kind=Tool.Kind.PYTHON,
        config={"callable": target},
        parameters=fields.pop(
            "parameters",
            {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]},
        ),
        **fields,
    )


def test_it_runs_a_builtin_tool_and_returns_its_answer(builtins):
    assert tool_execute(tool=builtins["calculator"], arguments={"expression": "6*7"}) == {
        "expression": "6*7",
        "result": 42,
    }


def test_it_rejects_arguments_that_break_the_schema_before_anything_runs():
    tool = python_tool("recorder", f"{__name__}:record_call")
    with pytest.raises(ToolArgumentsError, match="'n' is a required property"):
        tool_execute(tool=tool, arguments={})
    assert calls() == []
    assert tool_execute(tool=tool, arguments={"n": 1}) == {"ran": True}
    assert calls() == ["{'n': 1}"]


def test_it_reports_the_exception_a_tool_raises():
    tool = python_tool("failing", f"{__name__}:fail")
    with pytest.raises(ToolExecutionError, match="RuntimeError: the disk is full"):
        tool_execute(tool=tool, arguments={"n": 1})


def test_it_reports_a_value_error_from_a_builtin(builtins):
    with pytest.raises(ToolExecutionError, match="ValueError: unknown time zone 'Mars/Base'"):
        tool_execute(tool=builtins["clock"], arguments={"timezone": "Mars/Base"})


def test_it_stops_waiting_for_a_tool_after_the_configured_limit(builtins, settings):
    settings.TOOLTRAIL_TOOL_TIMEOUT_SECONDS = 0.2
    with pytest.raises(ToolTimeout, match="did not answer within 0.2 s"):
        tool_execute(tool=builtins["sleep"], arguments={"seconds": 5})


def test_a_tools_own_shorter_limit_wins(builtins):
    tool = builtins["sleep"]
    tool.timeout_seconds = 0.1
    with pytest.raises(ToolTimeout, match="within 0.1 s"):
        tool_execute(tool=tool, arguments={"seconds": 5})


def test_it_refuses_to_run_a_disabled_tool():
    tool = python_tool("off", f"{__name__}:record_call", status=Tool.Status.INACTIVE)
    with pytest.raises(ToolExecutionError, match="tool 'off' is inactive"):
        tool_execute(tool=tool, arguments={"n": 1})
    assert calls() == []


def test_it_names_a_python_target_that_cannot_be_imported():
    tool = python_tool("ghost", "tests.nowhere:nothing")
    with pytest.raises(ToolExecutionError, match="'tests.nowhere:nothing' cannot be imported"):
        tool_execute(tool=tool, arguments={"n": 1})


def test_it_imports_no_python_target_outside_the_allow_list():
    tool = python_tool("escape", "os:getcwd", parameters={"type": "object"})
    with pytest.raises(
        ToolExecutionError, match="'os:getcwd' is not allowed by TOOLTRAIL_PYTHON_TOOLS"
    ):
        tool_execute(tool=tool, arguments={})
    with pytest.raises(ToolExecutionError, match="is not allowed"):
        python_tool_register(name="escape2", target="subprocess:run")
    registered = python_tool_register(
        name="recorder2",
        target=f"{__name__}:record_call",
        parameters={"type": "object", "properties": {"n": {"type": "integer"}}},
    )
    assert tool_execute(tool=registered, arguments={"n": 2}) == {"ran": True}


def test_it_says_when_a_python_tool_has_no_target():
    tool = Tool.objects.create(name="empty", kind=Tool.Kind.PYTHON, config={})
    with pytest.raises(ToolExecutionError, match="has no config.callable"):
        tool_execute(tool=tool, arguments={})


def test_it_says_when_an_mcp_tool_has_no_server():
    tool = Tool.objects.create(name="remote", kind=Tool.Kind.MCP, config={})
    with pytest.raises(ToolExecutionError, match="MCP tool 'remote' has no server"):
        tool_execute(tool=tool, arguments={})


def test_it_turns_an_answer_that_is_not_json_into_text():
    tool = python_tool("setty", f"{__name__}:answer_with_an_object")
    assert tool_execute(tool=tool, arguments={"n": 1}) == "{1, 2}"


def _process_is_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_runaway_tool_is_killed_at_its_timeout_and_the_next_call_runs():
    tool = python_tool("spinner", f"{__name__}:runaway", timeout_seconds=0.5)
    with pytest.raises(ToolTimeout, match="did not answer within 0.5 s"):
        tool_execute(tool=tool, arguments={"n": 1})
    pids = set(calls())
    assert len(pids) == 1
    assert _process_is_gone(int(pids.pop()))
    # Its side effects ended with it: the file stops growing.
    written = len(calls())
    time.sleep(0.3)
    assert len(calls()) == written
    # The worker goes on.
    recorder = python_tool("recorder", f"{__name__}:record_call")
    assert tool_execute(tool=recorder, arguments={"n": 2}) == {"ran": True}


def test_a_cancel_stops_a_tool_call_in_progress():
    tool = python_tool("spinner", f"{__name__}:runaway", timeout_seconds=60)
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    with pytest.raises(ToolCancelled, match="cancelled"):
        tool_execute(tool=tool, arguments={"n": 1}, cancel=cancel)
    assert _process_is_gone(int(calls()[0]))


def test_a_cancelled_run_starts_no_tool_call():
    tool = python_tool("recorder", f"{__name__}:record_call")
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(ToolCancelled):
        tool_execute(tool=tool, arguments={"n": 1}, cancel=cancel)
    assert calls() == []


def test_it_says_when_a_tool_process_dies_without_an_answer():
    tool = python_tool("suicide", f"{__name__}:die")
    with pytest.raises(ToolExecutionError, match="died of signal SIGTERM"):
        tool_execute(tool=tool, arguments={"n": 1})
