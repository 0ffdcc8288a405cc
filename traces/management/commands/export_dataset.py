from django.core.management.base import BaseCommand, CommandError

from traces.export_services import dataset_export
from traces.exporters import FORMATS
from traces.exporters.files import ExportError


def _parse_filters(values: list[str]) -> dict[str, str]:
    """``--filter agent=demo --filter status=failed`` or ``--filter agent=demo,status=failed``."""
    found: dict[str, str] = {}
    for value in values:
        for part in value.split(","):
            if not part.strip():
                continue
            key, sep, val = part.partition("=")
            if not sep:
                raise CommandError(f"--filter takes key=value pairs, not {part!r}")
            found[key.strip()] = val.strip()
    return found


class Command(BaseCommand):
    help = (
        "Export labelled traces as a training dataset (TRL formats): JSONL + Parquet and a "
        "dataset card in --out. Without --queue or --filter it exports everything labelled."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--format", required=True, choices=FORMATS)
        parser.add_argument("--out", required=True, help="Directory to write into.")
        parser.add_argument("--queue", type=int, help="Only the traces of this annotation queue.")
        parser.add_argument(
            "--filter",
            action="append",
            default=[],
            help="Trace filter key=value (agent, tool, status, error, since, until, sample, "
            "seed); repeat or separate with commas.",
        )
        parser.add_argument(
            "--split", type=float, help="Train share, e.g. 0.9: train/test by trace."
        )
        parser.add_argument("--seed", type=int, default=0, help="Seed of the split (default 0).")

    def handle(self, *args, **options) -> None:
        try:
            result = dataset_export(
                format=options["format"],
                out_dir=options["out"],
                queue_id=options["queue"],
                filter=_parse_filters(options["filter"]) or None,
                split=options["split"],
                seed=options["seed"],
            )
        except ExportError as exc:
            raise CommandError(str(exc)) from exc
        rows = ", ".join(f"{split} {n}" for split, n in result["rows"].items())
        self.stdout.write(
            f"Exported {options['format']}: {rows} rows from {result['traces']} labelled traces "
            f"into {options['out']}: {', '.join(result['files'])}"
        )
