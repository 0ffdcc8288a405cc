"""Benchmark: how long after a step is committed does a websocket client see it?

    .venv/bin/python bench/live_latency.py [--clients 20] [--rate 50] [--seconds 10]

Starts its own stack — Redis (``REDIS_URL``, else an embedded server), a fresh SQLite
database in a temporary directory (or ``--database-url``), ``migrate``, one Daphne and
one Celery worker — and a scripted agent that emits about ``--rate`` steps a second
for ``--seconds`` seconds (each reply: model call, tool call, tool result).

1. Websocket: ``--clients`` JSON clients (bearer token) connect to the trace before the
   run starts (connected = greeted: catch-up and the trace's state received); for every
   live step they receive (the frames of ``docs/events.md``, read with ``json.loads``) we
   record ``time.time() - committed_at`` (stamped in the on-commit callback).
2. Polling, for comparison: the same number of clients poll
   ``GET /api/traces/<id>/steps?after=N`` every ``--poll-ms`` ms during a second run;
   latency is measured against the commit times one websocket listener reports.

Prints count, achieved step rate and p50/p95/p99 for each; the last line is
``p95_ms=<websocket p95>``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tooltrail import launcher  # noqa: E402

FINISHED = {"succeeded", "failed", "cancelled"}
# The documented websocket frames (docs/events.md): a live event {"type": "step", "seq": N,
# "committed_at": T, …}, several that arrived together {"type": "events", "events": [...]},
# a catch-up {"type": "steps", "steps": [...]}, and the trace's state {"type": "trace", …}.


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def summary(label: str, latencies_s: list[float]) -> dict[str, float]:
    ms = [x * 1000 for x in latencies_s]
    figures = {
        "p50": percentile(ms, 50),
        "p95": percentile(ms, 95),
        "p99": percentile(ms, 99),
        "max": max(ms) if ms else float("nan"),
        "mean": statistics.fmean(ms) if ms else float("nan"),
    }
    print(
        f"{label}: {len(ms)} deliveries; latency p50 {figures['p50']:.1f} ms, "
        f"p95 {figures['p95']:.1f} ms, p99 {figures['p99']:.1f} ms, "
        f"max {figures['max']:.1f} ms, mean {figures['mean']:.1f} ms",
        flush=True,
    )
    return figures


# --- Django-side set-up (in this process, on the benchmark's own database) -----------


def make_agent(*, turns: int, delay_ms: int):
    from agents.models import Agent, ModelEndpoint
    from toolsapp.models import Toolset
    from toolsapp.services import builtin_tools_sync

    builtin_tools_sync()
    script = [
        {
            "content": f"turn {n}",
            "tool_calls": [{"name": "calculator", "arguments": {"expression": f"{n} * 3"}}],
            "delay_ms": delay_ms,
            "prompt_tokens": 10,
            "completion_tokens": 3,
        }
        for n in range(turns)
    ] + [{"content": "done", "delay_ms": delay_ms}]
    suffix = str(time.time_ns())
    endpoint = ModelEndpoint.objects.create(
        name=f"bench-{suffix}", kind=ModelEndpoint.Kind.SCRIPTED, config={"script": script}
    )
    return Agent.objects.create(
        name="Latency bench",
        slug=f"bench-{suffix}",
        endpoint=endpoint,
        toolset=Toolset.objects.get(slug="builtin"),
        max_steps=turns + 1,
    )


def make_token() -> str:
    from django.contrib.auth import get_user_model

    from tooltrail.services import api_token_create, roles_sync

    roles_sync()
    user, _ = get_user_model().objects.get_or_create(
        username="bench", defaults={"is_superuser": True, "is_staff": True}
    )
    _, raw = api_token_create(user=user, name="bench")
    return raw


def queue_trace(agent) -> str:
    """A queued trace whose run is not yet enqueued, so clients can connect first."""
    from traces.services import trace_create

    trace = trace_create(
        name=agent.name,
        input="count",
        agent_slug=agent.slug,
        metadata={"agent_id": agent.id, "endpoint": agent.endpoint.name},
    )
    return str(trace.id)


def enqueue(trace_id: str) -> None:
    from agents.tasks import agent_run_task

    agent_run_task.apply_async(args=[trace_id], queue="agents")


# --- clients ------------------------------------------------------------------------


async def ws_client(
    url: str,
    *,
    origin: str,
    token: str,
    ready: asyncio.Event,
    out: list,
    commits: dict,
    sizes: list | None = None,
) -> tuple[list[int], int]:
    """Collect the latency of each live step until the trace finishes. Returns every step
    number received (live or by catch-up), in order, and the trace's final step count."""
    sizes = [] if sizes is None else sizes
    got: list[int] = []
    from websockets.asyncio.client import connect

    async with connect(
        url,
        origin=origin,
        additional_headers={"Authorization": f"Bearer {token}"},
        max_queue=None,
        compression=None,
    ) as ws:
        async for raw in ws:
            now = time.time()
            data = json.loads(raw)
            live = data["events"] if data["type"] == "events" else [data]
            for event in live:
                if event["type"] == "step":
                    out.append(now - event["committed_at"])
                    commits[event["seq"]] = event["committed_at"]
                    got.append(event["seq"])
                    sizes.append(len(raw) / len(live))
            if data["type"] == "steps":
                for step in data["steps"]:  # catch-up: not live, not measured
                    commits.setdefault(step["seq"], None)
                    got.append(step["seq"])
            elif data["type"] == "trace" and not ready.is_set():
                # Connected: the server has sent this socket its catch-up and the state.
                ready.set()
            elif data["type"] == "trace" and data["trace"]["status"] in FINISHED:
                return got, data["trace"]["step_count"]
    raise RuntimeError("the socket closed before the trace finished")


async def poll_client(
    base: str, trace_id: str, *, token: str, every: float, seen: dict, stop: asyncio.Event
) -> None:
    """Poll the cursor endpoint; record when each step was first seen."""
    import httpx

    cursor = 0
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=10
    ) as client:
        # Start at a random phase, as independent browsers would.
        await asyncio.sleep(every * (hash((id(seen), time.time_ns())) % 1000) / 1000)
        while True:
            response = await client.get(f"/api/traces/{trace_id}/steps", params={"after": cursor})
            now = time.time()
            page = response.json()
            for step in page["steps"]:
                seen[step["seq"]] = now
            cursor = page["cursor"]
            status = page["trace"]["status"]
            if status in FINISHED and not page["more"]:
                return
            if stop.is_set():
                return
            await asyncio.sleep(every)


def cpu_seconds(stack: dict) -> dict[str, float]:
    """CPU time (user + system) so far of each part: the server, the worker with its pool
    children, and this process (the clients)."""
    import psutil

    out: dict[str, float] = {}
    for name, proc in stack.get("procs", {}).items():
        try:
            parent = psutil.Process(proc.pid)
            total = 0.0
            for p in [parent, *parent.children(recursive=True)]:
                times = p.cpu_times()
                total += times.user + times.system
        except psutil.NoSuchProcess:
            continue
        out[name] = total
    own = psutil.Process().cpu_times()
    out["clients"] = own.user + own.system
    return out


async def websocket_run(stack: dict, *, clients: int, agent, token: str) -> tuple[list, dict]:
    trace_id = await asyncio.to_thread(queue_trace, agent)
    url = f"{stack['ws']}/ws/traces/{trace_id}/?after=0&format=json"
    latencies: list[list[float]] = [[] for _ in range(clients)]
    commits: dict[int, float] = {}
    sizes: list[int] = []
    readies = [asyncio.Event() for _ in range(clients)]
    tasks = [
        asyncio.create_task(
            ws_client(
                url,
                origin=stack["http"],
                token=token,
                ready=readies[i],
                out=latencies[i],
                commits=commits,
                sizes=sizes if i == 0 else None,
            )
        )
        for i in range(clients)
    ]
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), timeout=30)
    cpu_before, wall_before = cpu_seconds(stack), time.monotonic()
    await asyncio.to_thread(enqueue, trace_id)
    results = await asyncio.wait_for(asyncio.gather(*tasks), timeout=300)
    cpu_after, wall = cpu_seconds(stack), time.monotonic() - wall_before
    # Where the two cores went: with clients, server and worker on one machine, a part
    # near a whole core (or a sum near the machine's cores) is where the latency comes from.
    print(
        "cpu during the run (share of one core): "
        + ", ".join(
            f"{name} {(cpu_after[name] - cpu_before[name]) / wall:.0%}"
            for name in cpu_after
            if name in cpu_before
        )
        + f" over {wall:.1f} s",
        flush=True,
    )
    complete = sum(got == list(range(1, total + 1)) for got, total in results)
    caught_up = sum(len(got) for got, _ in results) - sum(len(x) for x in latencies)
    print(
        f"complete: {complete} of {clients} clients got every step exactly once, in order"
        f"; {caught_up} step deliveries came by catch-up rather than live",
        flush=True,
    )
    if sizes:
        print(
            f"step messages: mean {statistics.fmean(sizes) / 1024:.1f} KiB, "
            f"largest {max(sizes) / 1024:.1f} KiB",
            flush=True,
        )
    return latencies, commits


async def polling_run(
    stack: dict, *, clients: int, agent, token: str, every: float
) -> tuple[list[float], dict]:
    trace_id = await asyncio.to_thread(queue_trace, agent)
    commits: dict[int, float] = {}
    ready = asyncio.Event()
    listener = asyncio.create_task(
        ws_client(
            f"{stack['ws']}/ws/traces/{trace_id}/?after=0&format=json",
            origin=stack["http"],
            token=token,
            ready=ready,
            out=[],
            commits=commits,
        )
    )
    await asyncio.wait_for(ready.wait(), timeout=30)
    stop = asyncio.Event()
    seen: list[dict[int, float]] = [{} for _ in range(clients)]
    pollers = [
        asyncio.create_task(
            poll_client(stack["http"], trace_id, token=token, every=every, seen=s, stop=stop)
        )
        for s in seen
    ]
    await asyncio.to_thread(enqueue, trace_id)
    await asyncio.wait_for(listener, timeout=300)
    await asyncio.wait_for(asyncio.gather(*pollers), timeout=60)
    latencies = [
        at - commits[seq] for s in seen for seq, at in s.items() if commits.get(seq) is not None
    ]
    return latencies, commits


def spread(per_client: list[list[float]]) -> None:
    """Per step, how soon its first and its last client had it: the first client's wait is
    the way to the server's fan-out (a busy server delays the next step), the gap to the
    last one is the fan-out itself and the clients' own reading."""
    whole = [c for c in per_client if len(c) == len(per_client[0])]
    if len(whole) < 2 or not whole[0]:
        return
    firsts = [min(c[i] for c in whole) for i in range(len(whole[0]))]
    lasts = [max(c[i] for c in whole) for i in range(len(whole[0]))]
    print(
        f"per step: first client p50 {percentile(firsts, 50) * 1000:.1f} ms, "
        f"p95 {percentile(firsts, 95) * 1000:.1f} ms; last client p50 "
        f"{percentile(lasts, 50) * 1000:.1f} ms, p95 {percentile(lasts, 95) * 1000:.1f} ms",
        flush=True,
    )


def rate_of(commits: dict) -> tuple[int, float, float]:
    times = sorted(t for t in commits.values() if t is not None)
    if len(times) < 2:
        return len(times), 0.0, 0.0
    span = times[-1] - times[0]
    return len(times), (len(times) - 1) / span if span else 0.0, span


# --- the stack ----------------------------------------------------------------------


def wait_healthy(base: str, timeout: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError("the stack did not become healthy (is the worker up?)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--rate", type=float, default=50.0, help="target steps per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--delay-ms",
        type=int,
        default=None,
        help="scripted model delay per reply (default: from --rate, less the measured "
        "cost of recording three steps)",
    )
    parser.add_argument("--poll-ms", type=int, default=500)
    parser.add_argument("--no-polling", action="store_true")
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="tooltrail-bench-")
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
                "PYTHONUNBUFFERED": "1",
            }
            os.environ.update(env)
            import django

            django.setup()
            launcher.manage("migrate", "--noinput", "-v", "0", env=env)
            port = launcher.free_port()
            stack = {"http": f"http://127.0.0.1:{port}", "ws": f"ws://127.0.0.1:{port}"}
            procs.append(
                launcher.start_worker(
                    queues="agents",
                    env=env,
                    name=f"bench-{os.getpid()}@%h",
                    logfile=f"{tmp}/worker.log",
                    quiet=True,
                )
            )
            procs.append(launcher.start_daphne(port=port, env=env, quiet=True))
            stack["procs"] = {"server": procs[-1], "worker": procs[0]}
            wait_healthy(stack["http"])
            token = make_token()

            steps_per_turn = 3
            turns = max(1, round(args.rate * args.seconds / steps_per_turn))
            delay_ms = args.delay_ms
            if delay_ms is None:
                # Calibrate: the same run, same clients, at a first guess; the cost of a
                # turn beyond the model's delay (it grows with the conversation, and
                # with load) comes off the target.
                target_ms = steps_per_turn * 1000 / args.rate
                guess = round(target_ms * 0.75)
                probe = make_agent(turns=turns, delay_ms=guess)
                _, commits = asyncio.run(
                    websocket_run(stack, clients=args.clients, agent=probe, token=token)
                )
                _, probe_rate, _ = rate_of(commits)
                turn_ms = steps_per_turn * 1000 / probe_rate if probe_rate else target_ms
                delay_ms = max(0, round(guess + target_ms - turn_ms))
                print(
                    f"calibration: {probe_rate:.1f} steps/s at delay_ms={guess} "
                    f"({turn_ms:.1f} ms a turn) → delay_ms={delay_ms}",
                    flush=True,
                )
            print(
                f"database: {os.environ['DATABASE_URL'].split(':')[0]}; {args.clients} clients; "
                f"{turns} turns ({turns * steps_per_turn + 2} steps) at delay_ms={delay_ms}",
                flush=True,
            )

            agent = make_agent(turns=turns, delay_ms=delay_ms)
            # This process holds Django and the clients; a full pass of its collector
            # stalled every client at once (one ~200 ms stall a run, the whole p99).
            gc.collect()
            gc.freeze()
            per_client, commits = asyncio.run(
                websocket_run(stack, clients=args.clients, agent=agent, token=token)
            )
            count, rate, span = rate_of(commits)
            latencies = [x for client in per_client for x in client]
            expected = count * args.clients
            print(
                f"steps: {count} in {span:.2f} s = {rate:.1f} steps/s; "
                f"deliveries {len(latencies)} of {expected} expected",
                flush=True,
            )
            ws = summary(f"websocket ({args.clients} clients)", latencies)
            spread(per_client)

            if not args.no_polling:
                agent = make_agent(turns=turns, delay_ms=delay_ms)
                poll_latencies, commits = asyncio.run(
                    polling_run(
                        stack,
                        clients=args.clients,
                        agent=agent,
                        token=token,
                        every=args.poll_ms / 1000,
                    )
                )
                count, rate, span = rate_of(commits)
                print(f"steps: {count} in {span:.2f} s = {rate:.1f} steps/s", flush=True)
                summary(
                    f"polling /api/traces/<id>/steps every {args.poll_ms} ms "
                    f"({args.clients} clients)",
                    poll_latencies,
                )
            print(f"p95_ms={ws['p95']:.1f}", flush=True)
            return 0
    finally:
        for proc in reversed(procs):
            launcher.stop(proc)
        if args.keep_logs:
            print(f"logs kept in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
