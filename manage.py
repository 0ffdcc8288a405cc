#!/usr/bin/env python
import os
import sys

# Commands that use no app, model, URL, database or setting of ours run without
# django.setup() and with Django's default settings: importing our settings and
# every app (Celery, Channels and Daphne's reactor, the tool executors) adds about
# a second of start-up to a merge that takes a few.
STANDALONE_COMMANDS = {"merge_models": "agents.management.commands.merge_models"}


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tooltrail.settings")
    module = STANDALONE_COMMANDS.get(sys.argv[1] if len(sys.argv) > 1 else "")
    if module is not None:
        from importlib import import_module

        from django.conf import settings

        settings.configure()
        import_module(module).Command().run_from_argv(sys.argv)
        return
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
