"""``manage.py import_trace FILE [--format json|otlp] [--user NAME]``"""

from __future__ import annotations

import json

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from traces.ingest.decode import IngestError, parse
from traces.ingest.mapping import request_to_records
from traces.models import Trace
from traces.services import TraceError, spans_ingest, trace_import


class Command(BaseCommand):
    help = (
        "Read a trace back: Tooltrail trace JSON (restored exactly, same id) or OTLP/JSON "
        "(ingested as POST /v1/traces would)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("file")
        parser.add_argument("--format", choices=("json", "otlp"), default="json")
        parser.add_argument("--user", help="username recorded as the trace's creator")

    def handle(self, *args, **options) -> None:
        user = None
        if options["user"]:
            user = get_user_model().objects.filter(username=options["user"]).first()
            if user is None:
                raise CommandError(f"no user {options['user']!r}")
        try:
            with open(options["file"], "rb") as fh:
                raw = fh.read()
        except OSError as exc:
            raise CommandError(str(exc)) from exc
        try:
            if options["format"] == "json":
                trace = trace_import(data=json.loads(raw), user=user)
                self.stdout.write(f"imported trace {trace.id} ({trace.step_count} steps)")
                return
            decoded = request_to_records(parse(raw, kind="application/json"))
            saved = spans_ingest(records=decoded.records, user=user)
        except (ValueError, IngestError, TraceError) as exc:
            raise CommandError(str(exc)) from exc
        ids = sorted({r.otel_trace_id for r in decoded.records})
        for trace in Trace.objects.filter(otel_trace_id__in=ids):
            self.stdout.write(f"ingested trace {trace.id} (OTLP trace id {trace.otel_trace_id})")
        self.stdout.write(f"{saved} spans saved, {decoded.rejected} rejected")
