"""``import_openapi SPEC --name SOURCE [--base-url URL]``: import an OpenAPI 3 spec's
operations as HTTP tools. Progress on stdout; the last line is one JSON object."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from toolsapp.importers.openapi import SpecError
from toolsapp.models import HttpToolSource
from toolsapp.services import tool_import_openapi


class Command(BaseCommand):
    help = "Import an OpenAPI 3.0/3.1 spec (file or URL) as the tools of one HTTP source."

    def add_arguments(self, parser) -> None:
        parser.add_argument("spec", help="Path or URL of the spec (JSON or YAML).")
        parser.add_argument("--name", required=True, help="The source's name (a slug).")
        parser.add_argument("--base-url", help="Server URL (default: the spec's first server).")
        parser.add_argument(
            "--auth", choices=HttpToolSource.Auth.values, help="How calls authenticate."
        )
        parser.add_argument("--auth-name", help="Header or query parameter carrying the key.")
        parser.add_argument("--secret-env", help="Environment variable holding the secret.")

    def handle(self, *args, **options) -> None:
        def progress(message: str) -> None:
            self.stdout.write(message)
            self.stdout.flush()

        try:
            result = tool_import_openapi(
                name=options["name"],
                location=options["spec"],
                base_url=options["base_url"],
                auth=options["auth"],
                auth_name=options["auth_name"],
                secret_env=options["secret_env"],
                progress=progress,
            )
        except SpecError as exc:
            raise CommandError(f"nothing imported: {exc}") from exc
        self.stdout.write(json.dumps(result.summary()))
