"""How fast the BFCL checker scores the whole shared oracle, reading the file included.

    .venv/bin/python bench/score_bfcl.py [--oracle PATH] [--repeat 5]

Prints the best of N in-process runs (read the .jsonl.gz, score every candidate, compare
with the official verdicts) as items/s, and the wall time of the `score_bfcl` command
(Django start-up included) once.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agents.evals.bfcl_io import candidate_score, candidates_read  # noqa: E402

DEFAULT_ORACLE = ROOT.parent / "shared" / "data" / "bfcl" / "oracle" / "nonlive_oracle.jsonl.gz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--oracle", type=Path, default=DEFAULT_ORACLE)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    best, n, agree = float("inf"), 0, 0
    for _ in range(args.repeat):
        start = time.perf_counter()
        n = agree = 0
        for number, row in candidates_read(args.oracle):
            scored = candidate_score(row, line=number)
            n += 1
            agree += scored.valid == scored.official_valid
        best = min(best, time.perf_counter() - start)
    print(
        f"in-process: {n} candidates in {best:.3f} s (best of {args.repeat}) = {n / best:,.0f} items/s"
    )
    print(f"agreement with the official checker: {agree}/{n}")

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "manage.py",
                "score_bfcl",
                "--input",
                str(args.oracle),
                "--output",
                os.path.join(tmp, "verdicts.jsonl"),
            ],
            cwd=ROOT,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        command = time.perf_counter() - start
    print(f"manage.py score_bfcl (with Django start-up): {command:.2f} s")
    print(f"items_per_s={n / best:.0f}")


if __name__ == "__main__":
    main()
