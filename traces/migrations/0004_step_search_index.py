"""Full-text index of steps' input, output and error, on PostgreSQL only (SQLite has
no GIN indexes; its search is a scan). Built on ``traces.selectors.step_search_vector``,
the very expression the trace list searches, so the planner can use it."""

from django.db import migrations

INDEX = "step_search_gin"


def add_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    from django.contrib.postgres.indexes import GinIndex

    from traces.selectors import step_search_vector

    Step = apps.get_model("traces", "Step")
    schema_editor.add_index(Step, GinIndex(step_search_vector(), name=INDEX))


def drop_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [("traces", "0003_debugger_counters_tags_forks")]

    operations = [migrations.RunPython(add_index, drop_index)]
