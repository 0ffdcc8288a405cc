"""``manage.py export_trace TRACE_ID [--format json|otlp] [--output FILE]``"""

from __future__ import annotations

import json
import sys

from django.core.management.base import BaseCommand, CommandError

from traces.models import Trace
from traces.transfer import trace_export_json, trace_export_otlp


class Command(BaseCommand):
    help = "Write a trace as Tooltrail trace JSON (default) or OTLP/JSON (docs/ingest.md)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("trace_id")
        parser.add_argument("--format", choices=("json", "otlp"), default="json")
        parser.add_argument("--output", "-o", help="file to write (default: standard output)")

    def handle(self, *args, **options) -> None:
        try:
            trace = Trace.objects.get(pk=options["trace_id"])
        except (Trace.DoesNotExist, ValueError, Exception) as exc:
            raise CommandError(f"no trace {options['trace_id']!r}: {exc}") from exc
        export = trace_export_json if options["format"] == "json" else trace_export_otlp
        text = json.dumps(export(trace=trace), indent=1, ensure_ascii=False)
        if options["output"]:
            with open(options["output"], "w", encoding="utf-8") as fh:
                fh.write(text)
        else:
            sys.stdout.write(text + "\n")
