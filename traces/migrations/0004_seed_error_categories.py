"""Seed the editable error taxonomy (traces.taxonomy.DEFAULT_CATEGORIES)."""

from django.db import migrations


def seed(apps, schema_editor):
    from traces.taxonomy import error_categories_seed

    error_categories_seed(apps.get_model("traces", "ErrorCategory"))


class Migration(migrations.Migration):
    dependencies = [("traces", "0003_annotation")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
