import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils.text import slugify

from agents.evals.datasets import DatasetFileError
from agents.evals.services import EvalError, dataset_create, dataset_items_parse


class Command(BaseCommand):
    help = (
        "Import an evaluation dataset: BFCL's question file (with --answers, its possible_answer "
        'file) or Tooltrail JSONL. The last line printed is {"dataset": NAME, "items": N}.'
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("file", help="the question file (JSON Lines)")
        parser.add_argument("--format", required=True, choices=["bfcl", "jsonl"])
        parser.add_argument("--answers", help="BFCL: the possible_answer file for the questions")
        parser.add_argument("--name", required=True, help="the dataset's name (a slug)")
        parser.add_argument("--description", default="")

    def handle(self, *args, **options) -> None:
        name = options["name"]
        if slugify(name) != name:
            raise CommandError(
                f"--name must be a slug (letters, digits, - and _), e.g. {slugify(name)!r}"
            )
        try:
            items = dataset_items_parse(
                format=options["format"],
                questions=Path(options["file"]),
                answers=Path(options["answers"]) if options["answers"] else None,
            )
            self.stderr.write(f"read {len(items)} items from {options['file']}")
            dataset = dataset_create(
                name=name, format=options["format"], items=items, description=options["description"]
            )
        except (DatasetFileError, EvalError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(json.dumps({"dataset": dataset.name, "items": dataset.item_count}))
