"""python manage.py merge_models CONFIG.yml OUTPUT_DIR [--device cpu|cuda] [--seed N]"""

from __future__ import annotations

import re
import resource
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from agents.training.merge import (
    DEFAULT_SHARD_SIZE,
    MergeError,
    MergeProgress,
    config_load,
    merge_run,
)

_UNITS = {"": 1, "k": 1000, "m": 1000**2, "g": 1000**3}


def _size(text: str) -> int:
    """Bytes, optionally with a k/M/G suffix and a trailing B ("500MB", "5G")."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmg]?)b?\s*", text.lower())
    if match is None:
        raise CommandError(f"bad size {text!r} (use e.g. 500MB or 5G)")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


class Command(BaseCommand):
    help = "Merge fine-tuned models described by a mergekit-style YAML file into OUTPUT_DIR."
    # The merge touches no database, URL or model of ours: Django's system checks
    # (which import every URLconf and view, torch's users included) only cost start-up.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser):
        parser.add_argument("config", help="merge config (mergekit YAML format)")
        parser.add_argument("output_dir", help="directory to create for the merged model")
        parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
        parser.add_argument("--seed", type=int, default=0, help="seed for DARE's random drop")
        parser.add_argument(
            "--shard-size",
            default=str(DEFAULT_SHARD_SIZE),
            help="bytes per output shard (suffix k, M or G allowed; default 5G)",
        )

    def handle(self, *args, **options):
        shard_size = _size(options["shard_size"])
        bars: list[tqdm] = []

        def progress(p: MergeProgress) -> None:
            if not bars:  # created on the first report, when the total is known
                bars.append(
                    tqdm(
                        total=p.bytes_total,
                        unit="B",
                        unit_scale=True,
                        unit_divisor=1024,
                        desc="merge",
                        file=self.stderr,
                    )
                )
            bar = bars[0]
            bar.set_postfix_str(f"{p.tensors_done}/{p.tensors_total} tensors", refresh=False)
            bar.update(p.bytes_done - bar.n)

        try:
            config = config_load(path=Path(options["config"]))
            result = merge_run(
                config=config,
                output_dir=Path(options["output_dir"]),
                device=options["device"],
                seed=options["seed"],
                shard_size=shard_size,
                progress=progress,
            )
        except MergeError as exc:
            raise CommandError(str(exc)) from exc
        finally:
            for bar in bars:
                bar.close()
        peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        self.stdout.write(
            f"merged {result.tensors} tensors ({result.bytes_written / 1024**3:.2f} GiB) "
            f"into {result.output_dir}"
        )
        self.stdout.write(
            f"time {result.seconds:.1f} s, peak memory {peak_kib / 1024**2:.2f} GiB (max RSS)"
        )
