"""OTLP ingest throughput: Tooltrail against Arize Phoenix, same load, same run.

    .venv/bin/python bench/ingest.py [--spans 10000] [--senders 8] [--batch 100]
    .venv/bin/python bench/ingest.py --skip-phoenix          # Tooltrail only

Both servers get the same pre-built OTLP/HTTP protobuf requests (GenAI-attributed
agent traces: invoke_agent → chat → execute_tool …, ``--trace-spans`` spans a trace,
``--batch`` spans a request) from ``--senders`` concurrent senders that, like the
OpenTelemetry exporters, wait ``Retry-After`` and resend on 429/503.

Tooltrail: its own stack (Redis, a fresh SQLite database in a temporary directory
or ``--database-url``, ``migrate``, one Daphne), a token of a bench user. Phoenix:
``arize-phoenix`` in ``.venv-phoenix`` (``scripts/phoenix_venv.sh`` makes it), started
with its SQLite default in a temporary working directory.

Printed per server: spans/s accepted (spans in 2xx answers over the time to send
them all), spans/s persisted (all spans visible through the server's API, over the
time from the first send until they are), spans lost, and the peak RSS of the
server's processes. For Tooltrail also the trace list page (``/traces/``) load time
while ingest runs. Last line: ``ratio_vs_phoenix=<Tooltrail persisted / Phoenix
persisted>``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tooltrail import launcher  # noqa: E402

PHOENIX_VENV = REPO / os.environ.get("PHOENIX_VENV", ".venv-phoenix")


# --- the load ---------------------------------------------------------------------------


def build_requests(*, spans: int, batch: int, trace_spans: int, seed: int = 7) -> list[bytes]:
    """``spans`` spans as serialized ExportTraceServiceRequests of ``batch`` spans each,
    grouped into agent traces of ``trace_spans`` spans (a trace may straddle two
    requests, as with a real batch processor)."""
    import json

    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

    rng = random.Random(seed)
    t0 = time.time_ns()

    def kv(key, value):
        if isinstance(value, int):
            return KeyValue(key=key, value=AnyValue(int_value=value))
        return KeyValue(key=key, value=AnyValue(string_value=value))

    def agent_trace(n: int) -> list[Span]:
        trace_id = rng.randbytes(16)
        root_id = rng.randbytes(8)
        start = t0 + n * 1_000_000
        out = [
            Span(
                trace_id=trace_id,
                span_id=root_id,
                name="invoke_agent bench",
                kind=Span.SPAN_KIND_INTERNAL,
                start_time_unix_nano=start,
                end_time_unix_nano=start + 900_000,
                attributes=[
                    kv("gen_ai.operation.name", "invoke_agent"),
                    kv("gen_ai.agent.name", "bench-agent"),
                    kv("input.value", f"question {n}"),
                ],
            )
        ]
        for i in range(1, trace_spans):
            s = start + i * 1000
            if i % 2:
                attrs = [
                    kv("gen_ai.operation.name", "chat"),
                    kv("gen_ai.provider.name", "openai"),
                    kv("gen_ai.request.model", "gpt-4o-mini"),
                    kv("gen_ai.usage.input_tokens", 100 + i),
                    kv("gen_ai.usage.output_tokens", 20),
                    kv(
                        "gen_ai.input.messages",
                        json.dumps(
                            [{"role": "user", "parts": [{"type": "text", "content": f"step {i}"}]}]
                        ),
                    ),
                    kv(
                        "gen_ai.output.messages",
                        json.dumps(
                            [
                                {
                                    "role": "assistant",
                                    "parts": [
                                        {
                                            "type": "tool_call",
                                            "id": f"c{i}",
                                            "name": "lookup",
                                            "arguments": {"q": i},
                                        }
                                    ],
                                }
                            ]
                        ),
                    ),
                ]
                name = "chat gpt-4o-mini"
            else:
                attrs = [
                    kv("gen_ai.operation.name", "execute_tool"),
                    kv("gen_ai.tool.name", "lookup"),
                    kv("gen_ai.tool.call.id", f"c{i - 1}"),
                    kv("gen_ai.tool.call.arguments", json.dumps({"q": i - 1})),
                    kv("gen_ai.tool.call.result", json.dumps({"hits": [i, i + 1]})),
                ]
                name = "execute_tool lookup"
            out.append(
                Span(
                    trace_id=trace_id,
                    span_id=rng.randbytes(8),
                    parent_span_id=root_id,
                    name=name,
                    kind=Span.SPAN_KIND_CLIENT,
                    start_time_unix_nano=s,
                    end_time_unix_nano=s + 800,
                    attributes=attrs,
                )
            )
        return out

    all_spans: list[Span] = []
    n = 0
    while len(all_spans) < spans:
        all_spans.extend(agent_trace(n))
        n += 1
    all_spans = all_spans[:spans]
    bodies = []
    for start in range(0, len(all_spans), batch):
        req = ExportTraceServiceRequest()
        rs = req.resource_spans.add()
        rs.resource.attributes.append(kv("service.name", "bench-agent"))
        ss = rs.scope_spans.add()
        ss.scope.name = "bench"
        ss.spans.extend(all_spans[start : start + batch])
        bodies.append(req.SerializeToString())
    return bodies


async def send_all(
    url: str, bodies: list[bytes], *, senders: int, headers: dict[str, str], batch: int
) -> dict:
    """Send every body with ``senders`` concurrent connections; resend on 429/503."""
    import httpx

    work: asyncio.Queue = asyncio.Queue()
    for body in bodies:
        work.put_nowait(body)
    stats = {"accepted": 0, "rejected": 0, "retries": 0, "errors": 0, "statuses": {}}

    async def sender(client: httpx.AsyncClient) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceResponse,
        )

        while True:
            try:
                body = work.get_nowait()
            except asyncio.QueueEmpty:
                return
            spans = batch if len(body) else 0
            for _attempt in range(100):
                try:
                    r = await client.post(url, content=body)
                except httpx.HTTPError:
                    stats["errors"] += 1
                    await asyncio.sleep(0.5)
                    continue
                stats["statuses"][r.status_code] = stats["statuses"].get(r.status_code, 0) + 1
                if r.status_code in (429, 503):
                    stats["retries"] += 1
                    await asyncio.sleep(float(r.headers.get("retry-after", "1")))
                    continue
                if r.status_code == 200:
                    partial = ExportTraceServiceResponse.FromString(r.content).partial_success
                    stats["rejected"] += partial.rejected_spans
                    stats["accepted"] += spans - partial.rejected_spans
                break

    limits = httpx.Limits(max_connections=senders, max_keepalive_connections=senders)
    async with httpx.AsyncClient(
        headers={"Content-Type": "application/x-protobuf", **headers}, timeout=120, limits=limits
    ) as client:
        start = time.monotonic()
        await asyncio.gather(*(sender(client) for _ in range(senders)))
        stats["seconds"] = time.monotonic() - start
    return stats


# --- measuring ----------------------------------------------------------------------------


def peak_rss_mib(pids: list[int]) -> float:
    """Sum of each process's peak resident set (VmHWM) and of its children's."""
    total_kib = 0
    seen = set()
    for pid in pids:
        stack = [pid]
        while stack:
            p = stack.pop()
            if p in seen:
                continue
            seen.add(p)
            try:
                status = Path(f"/proc/{p}/status").read_text()
                children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
            except OSError:
                continue
            match = re.search(r"VmHWM:\s+(\d+) kB", status)
            total_kib += int(match.group(1)) if match else 0
            stack.extend(int(c) for c in children)
    return total_kib / 1024


def wait_persisted(count_fn, *, expected: int, start: float, timeout: float) -> tuple[int, float]:
    """Poll ``count_fn`` until it reports ``expected`` spans; (count, seconds since start)."""
    deadline = time.monotonic() + timeout
    count = 0
    while time.monotonic() < deadline:
        count = count_fn()
        if count >= expected:
            return count, time.monotonic() - start
        time.sleep(0.2)
    return count, time.monotonic() - start


# --- Tooltrail ------------------------------------------------------------------------------


def tooltrail_count_fn(base: str, token: str, otel_ids: list[str]):
    """Spans visible through the API: the step counts of every trace, found by OTLP id
    (``GET /api/traces?otel_trace_id=``), eight requests at a time."""
    import httpx

    client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)

    from concurrent.futures import ThreadPoolExecutor

    def one(otel_id: str) -> int:
        traces = client.get("/api/traces", params={"otel_trace_id": otel_id}).json()["traces"]
        return sum(t["step_count"] for t in traces)

    def count(ids: list[str]) -> int:
        with ThreadPoolExecutor(8) as pool:
            return sum(pool.map(one, ids))

    return count


def login_session(base: str, username: str, password: str):
    import httpx

    client = httpx.Client(base_url=base, timeout=30, follow_redirects=True)
    page = client.get("/accounts/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    client.post(
        "/accounts/login/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": token},
        headers={"Referer": f"{base}/accounts/login/"},
    )
    return client


def run_tooltrail(args, bodies: list[bytes], otel_ids: list[str], expected: int) -> dict:
    tmp = tempfile.mkdtemp(prefix="tooltrail-bench-ingest-")
    procs = []
    try:
        with launcher.redis_url() as redis:
            env = {
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "tooltrail.settings",
                "TOOLTRAIL_VAR_DIR": tmp,
                "DATABASE_URL": args.database_url or f"sqlite:///{tmp}/bench.sqlite3",
                "REDIS_URL": redis,
                "LOG_LEVEL": "WARNING",
            }
            os.environ.update(env)
            import django

            django.setup()
            launcher.manage("migrate", "--noinput", "-v", "0", env=env)
            from django.contrib.auth import get_user_model

            from tooltrail.services import api_token_create, roles_sync

            roles_sync()
            user = get_user_model().objects.create_superuser("bench", password="bench-pass-123")
            token = api_token_create(user=user, name="bench")[1]
            port = launcher.free_port()
            procs.append(launcher.start_daphne(port=port, env=env, quiet=True))
            base = f"http://127.0.0.1:{port}"
            browser = login_session(base, "bench", "bench-pass-123")
            assert browser.get("/traces/").status_code == 200
            list_times: list[float] = []
            stop = False

            def watch_list() -> None:
                while not stop:
                    t = time.monotonic()
                    browser.get("/traces/")
                    list_times.append(time.monotonic() - t)
                    time.sleep(0.5)

            import threading

            watcher = threading.Thread(target=watch_list, daemon=True)
            start = time.monotonic()
            watcher.start()
            stats = asyncio.run(
                send_all(
                    f"{base}/v1/traces",
                    bodies,
                    senders=args.senders,
                    headers={"Authorization": f"Bearer {token}"},
                    batch=args.batch,
                )
            )
            stop = True
            watcher.join()
            count = tooltrail_count_fn(base, token, otel_ids)
            persisted, seconds = wait_persisted(
                lambda: count(otel_ids), expected=expected, start=start, timeout=args.timeout
            )
            return {
                **stats,
                "persisted": persisted,
                "persist_seconds": seconds,
                "peak_rss_mib": peak_rss_mib([p.pid for p in procs]),
                "list_max_s": max(list_times) if list_times else float("nan"),
                "list_n": len(list_times),
            }
    finally:
        for proc in procs:
            launcher.stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


# --- Phoenix ----------------------------------------------------------------------------------


def run_phoenix(args, bodies: list[bytes], expected: int) -> dict:
    import httpx

    subprocess.run([str(REPO / "scripts" / "phoenix_venv.sh")], check=True)
    tmp = tempfile.mkdtemp(prefix="phoenix-bench-")
    port, grpc_port = launcher.free_port(), launcher.free_port()
    env = {
        **os.environ,
        "PHOENIX_WORKING_DIR": tmp,
        "PHOENIX_PORT": str(port),
        "PHOENIX_GRPC_PORT": str(grpc_port),
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_TELEMETRY_ENABLED": "false",
    }
    env.pop("PHOENIX_SQL_DATABASE_URL", None)
    log = open(Path(tmp) / "phoenix.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [str(PHOENIX_VENV / "bin" / "phoenix"), "serve"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        launcher.wait_for_port(port, proc=proc, timeout=180)
        base = f"http://127.0.0.1:{port}"
        query = {"query": "{ projects { edges { node { name recordCount } } } }"}

        def count() -> int:
            r = httpx.post(f"{base}/graphql", json=query, timeout=30)
            edges = r.json()["data"]["projects"]["edges"]
            return sum(e["node"]["recordCount"] for e in edges)

        start = time.monotonic()
        stats = asyncio.run(
            send_all(
                f"{base}/v1/traces", bodies, senders=args.senders, headers={}, batch=args.batch
            )
        )
        # Also when the rows are in its database file (the API may lag behind its
        # writes by a cache); printed for comparison, the ratio uses the API figure.
        db_seconds: list[float] = []

        def count_and_rows() -> int:
            if not db_seconds and phoenix_rows(Path(tmp)) >= expected:
                db_seconds.append(time.monotonic() - start)
            return count()

        persisted, seconds = wait_persisted(
            count_and_rows, expected=expected, start=start, timeout=args.timeout
        )
        return {
            **stats,
            "persisted": persisted,
            "persist_seconds": seconds,
            "rows_seconds": db_seconds[0] if db_seconds else float("nan"),
            "peak_rss_mib": peak_rss_mib([proc.pid]),
        }
    finally:
        launcher.stop(proc)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def phoenix_rows(workdir: Path) -> int:
    """Spans in Phoenix's SQLite file (read-only)."""
    import sqlite3

    path = workdir / "phoenix.db"
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
            return db.execute("SELECT count(*) FROM spans").fetchone()[0]
    except sqlite3.Error:
        return 0


def report(name: str, result: dict, expected: int) -> float:
    accepted_rate = result["accepted"] / result["seconds"]
    persisted_rate = result["persisted"] / result["persist_seconds"]
    print(
        f"{name}: sent {expected} spans in {result['seconds']:.1f} s "
        f"({accepted_rate:.0f} spans/s accepted; statuses {result['statuses']}, "
        f"{result['retries']} resends); persisted {result['persisted']} in "
        f"{result['persist_seconds']:.1f} s ({persisted_rate:.0f} spans/s persisted); "
        f"lost {expected - result['persisted']}; peak RSS {result['peak_rss_mib']:.0f} MiB",
        flush=True,
    )
    return persisted_rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spans", type=int, default=10_000)
    parser.add_argument(
        "--batch", type=int, default=512, help="spans per request (the OTel SDK's default)"
    )
    parser.add_argument("--trace-spans", type=int, default=20, help="spans per agent trace")
    parser.add_argument("--senders", type=int, default=8)
    parser.add_argument(
        "--timeout", type=float, default=300, help="seconds to wait for persistence"
    )
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    parser.add_argument("--skip-phoenix", action="store_true")
    args = parser.parse_args()

    bodies = build_requests(spans=args.spans, batch=args.batch, trace_spans=args.trace_spans)
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    otel_ids = sorted(
        {
            s.trace_id.hex()
            for body in bodies
            for rs in ExportTraceServiceRequest.FromString(body).resource_spans
            for ss in rs.scope_spans
            for s in ss.spans
        }
    )
    print(
        f"load: {args.spans} spans, {len(otel_ids)} traces, {len(bodies)} requests of "
        f"{args.batch} spans ({sum(map(len, bodies)) / len(bodies) / 1024:.0f} KiB each), "
        f"{args.senders} concurrent senders",
        flush=True,
    )
    ours = run_tooltrail(args, bodies, otel_ids, args.spans)
    ours_rate = report("tooltrail", ours, args.spans)
    print(
        f"tooltrail: trace list page during ingest: {ours['list_n']} loads, "
        f"slowest {ours['list_max_s'] * 1000:.0f} ms",
        flush=True,
    )
    if args.skip_phoenix:
        print(f"persisted_spans_per_s={ours_rate:.0f}")
        return 0
    theirs = run_phoenix(args, bodies, args.spans)
    theirs_rate = report("phoenix", theirs, args.spans)
    print(
        f"phoenix: all rows in its database after {theirs['rows_seconds']:.1f} s "
        f"({args.spans / theirs['rows_seconds']:.0f} spans/s)",
        flush=True,
    )
    print(f"ratio_vs_phoenix={ours_rate / theirs_rate:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
