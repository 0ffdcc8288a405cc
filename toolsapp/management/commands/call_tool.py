"""``call_tool NAME [--source SOURCE] --args JSON``: validate and call one tool through the
same path an agent's call takes; the last line printed is the result as JSON."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from toolsapp.executors import ToolExecutionError
from toolsapp.selectors import ToolLookupError, tool_get
from toolsapp.services import tool_execute
from toolsapp.validation import ToolArgumentsError, arguments_parse


class Command(BaseCommand):
    help = "Call a tool with JSON arguments (validated against its schema first)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help="The tool's name.")
        parser.add_argument(
            "--source",
            help="openapi:NAME or mcp:NAME (or the bare name); '' for Python and code tools.",
        )
        parser.add_argument(
            "--args", dest="arguments", default="{}", help="The arguments, a JSON object."
        )

    def handle(self, *args, **options) -> None:
        try:
            tool = tool_get(name=options["name"], source=options["source"])
            arguments = arguments_parse(options["arguments"])
            result = tool_execute(tool=tool, arguments=arguments)
        except (ToolLookupError, ToolArgumentsError) as exc:
            raise CommandError(str(exc)) from exc
        except ToolExecutionError as exc:
            raise CommandError(f"{tool.name} failed: {exc}") from exc
        self.stdout.write(json.dumps(result, ensure_ascii=False, default=str))
