"""``export_tools --source SOURCE | --toolset SLUG``: one OpenAI ``tools`` entry a line."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from toolsapp.models import Tool, Toolset
from toolsapp.selectors import (
    ToolLookupError,
    source_key_resolve,
    tool_openai_spec,
    tools_by_model_name,
    toolset_tools,
)


class Command(BaseCommand):
    help = "Print the active tools of a source or toolset, one OpenAI tools entry per line."

    def add_arguments(self, parser) -> None:
        group = parser.add_mutually_exclusive_group(required=True)
        group.add_argument("--source", help="openapi:NAME, mcp:NAME, or a source's bare name.")
        group.add_argument("--toolset", help="A toolset's slug (names as an agent sends them).")

    def handle(self, *args, **options) -> None:
        if options["toolset"] is not None:
            toolset = Toolset.objects.filter(slug=options["toolset"]).first()
            if toolset is None:
                raise CommandError(f"there is no toolset {options['toolset']!r}")
            tools = toolset_tools(toolset=toolset)
        else:
            try:
                key = source_key_resolve(source=options["source"])
            except ToolLookupError as exc:
                raise CommandError(str(exc)) from exc
            tools = list(Tool.objects.filter(source=key, status=Tool.Status.ACTIVE).order_by("pk"))
        for name, tool in tools_by_model_name(tools=tools).items():
            self.stdout.write(
                json.dumps(tool_openai_spec(tool=tool, name=name), ensure_ascii=False)
            )
