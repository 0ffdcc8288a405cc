"""The sandbox of ``code`` tools: the code gets its answer out and nothing else — no
network, none of our files, environment or secrets, bounded CPU, memory, processes,
files and output — and the worker that ran it carries on."""

from __future__ import annotations

import os
import socket
import threading

import pytest
from django.conf import settings

from tests.conftest import Stack
from toolsapp.executors import ToolCancelled, ToolExecutionError, ToolTimeout
from toolsapp.sandbox import sandbox_run


def run(source: str, timeout: float = 5.0, **arguments):
    return sandbox_run(source=source, function="tool", arguments=arguments, timeout=timeout)


def test_it_runs_a_function_and_returns_its_answer():
    source = "def tool(a, b):\n    return {'sum': a + b, 'words': 'x y'.split()}\n"
    assert run(source, a=2, b=40) == {"sum": 42, "words": ["x", "y"]}


def test_the_code_runs_as_nobody_in_an_empty_directory_with_a_clean_environment():
    source = (
        "import os\n"
        "def tool():\n"
        "    return {'uid': os.getuid(), 'cwd': os.getcwd(), 'files': os.listdir('.'),\n"
        "            'env': sorted(os.environ)}\n"
    )
    assert run(source) == {
        "uid": 65534,
        "cwd": "/tmp/work",
        "files": [],
        "env": ["HOME", "LANG", "PATH", "TMPDIR"],
    }


def test_it_reports_the_codes_exception_with_its_line():
    source = "def tool():\n    x = 1\n    return x / 0\n"
    with pytest.raises(ToolExecutionError, match=r"ZeroDivisionError: division by zero \(line 3\)"):
        run(source)


def test_it_cannot_read_the_settings_or_the_secret_key():
    secret = settings.VAR_DIR / "secret_key"
    secret.parent.mkdir(parents=True, exist_ok=True)
    if not secret.exists():
        secret.write_text("test-secret")
    for path in (settings.BASE_DIR / "tooltrail" / "settings.py", secret):
        assert path.exists()
        source = f"def tool():\n    return open({str(path)!r}).read()\n"
        with pytest.raises(ToolExecutionError, match="FileNotFoundError|PermissionError"):
            run(source)


def test_it_sees_none_of_the_workers_memory_or_environment():
    os.environ["TOOLTRAIL_TEST_SECRET"] = "hunter2"
    try:
        source = (
            "import os, sys\n"
            "def tool():\n"
            "    return [os.environ.get('TOOLTRAIL_TEST_SECRET'), 'django' in sys.modules,\n"
            "            open('/proc/1/environ', 'rb').read().decode(errors='replace')]\n"
        )
        value, django_loaded, init_env = run(source)
    finally:
        del os.environ["TOOLTRAIL_TEST_SECRET"]
    assert value is None
    assert django_loaded is False
    assert "hunter2" not in init_env


def test_a_socket_connect_fails_even_to_a_server_on_this_machine():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    try:
        source = (
            "import socket\n"
            "def tool(port):\n"
            "    socket.create_connection(('127.0.0.1', port), timeout=2)\n"
            "    return 'connected'\n"
        )
        with pytest.raises(ToolExecutionError, match="Network is unreachable"):
            run(source, port=port)
    finally:
        server.close()


def test_writing_outside_its_directory_fails_and_leaves_nothing_behind(tmp_path):
    target = tmp_path / "escaped.txt"
    source = f"def tool():\n    open({str(target)!r}, 'w').write('x')\n"
    with pytest.raises(ToolExecutionError, match="PermissionError|FileNotFoundError"):
        run(source)
    source = "def tool():\n    open('/etc/passwd', 'a').write('x')\n"
    with pytest.raises(ToolExecutionError, match="PermissionError|Read-only"):
        run(source)
    assert not target.exists()
    # Its own directory is writable.
    source = (
        "def tool():\n    open('out.txt', 'w').write('hi')\n    return open('out.txt').read()\n"
    )
    assert run(source) == "hi"


def test_a_file_over_the_size_limit_is_refused():
    source = "def tool():\n    open('big', 'wb').write(b'x' * (64 << 20))\n"
    with pytest.raises(ToolExecutionError, match="wrote a file over the size limit|File too large"):
        run(source)


def test_allocating_10_gb_fails_with_a_memory_error():
    source = "def tool():\n    return len(bytearray(10 * 1024**3))\n"
    with pytest.raises(ToolExecutionError, match=r"MemoryError: the tool ran out of memory"):
        run(source)


def test_a_fork_bomb_fails_and_its_processes_die_with_it():
    source = "import os\ndef tool():\n    while True:\n        os.fork()\n"
    with pytest.raises(
        ToolExecutionError, match="BlockingIOError|Resource temporarily unavailable"
    ):
        run(source)
    assert run("def tool():\n    return 1\n") == 1


def test_an_infinite_loop_is_stopped_at_the_timeout():
    with pytest.raises(ToolTimeout, match="within 1 s"):
        run("def tool():\n    while True:\n        pass\n", timeout=1)


def test_a_process_that_sleeps_forever_in_the_background_dies_with_the_call():
    source = (
        "import os, time\n"
        "def tool():\n"
        "    if os.fork() == 0:\n"
        "        os.setsid()\n"
        "        time.sleep(3600)\n"
        "    return 'parent done'\n"
    )
    assert run(source) == "parent done"
    # The pid namespace goes with its first process: the sleeper is killed (the kernel
    # does it, a moment later), so no process of nobody's is left.
    Stack.wait_until(lambda: not _nobodys_processes(), timeout=10, what="the sleeper to die")


def _nobodys_processes() -> list[str]:
    owned = []
    for pid in os.listdir("/proc"):
        try:
            if pid.isdigit() and os.stat(f"/proc/{pid}").st_uid == 65534:
                owned.append(pid)
        except FileNotFoundError:
            pass
    return owned


def test_an_answer_over_the_output_limit_is_refused(settings):
    settings.TOOLTRAIL_SANDBOX_MAX_OUTPUT = 1000
    with pytest.raises(ToolExecutionError, match="answer is over 1000 bytes"):
        run("def tool():\n    return 'x' * 5000\n")


def test_printing_a_lot_does_not_break_the_answer():
    assert (
        run("def tool():\n    for i in range(10000):\n        print(i)\n    return 'ok'\n") == "ok"
    )


def test_a_cancel_stops_the_code():
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    with pytest.raises(ToolCancelled):
        sandbox_run(
            source="def tool():\n    while True:\n        pass\n",
            function="tool",
            arguments={},
            timeout=30,
            cancel=cancel,
        )


def test_a_missing_function_is_named():
    with pytest.raises(ToolExecutionError, match="no function named 'tool'"):
        run("def other():\n    return 1\n")
