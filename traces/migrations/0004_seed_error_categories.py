"""Seed the editable error taxonomy. Categories an admin already renamed or
deactivated are left alone (get_or_create by slug)."""

from django.db import migrations

CATEGORIES = [
    ("wrong-tool", "Wrong tool", "A different tool should have been called."),
    ("wrong-arguments", "Wrong arguments", "The right tool with wrong or missing arguments."),
    ("missing-call", "Missing call", "A tool call that should have been made was not."),
    ("unnecessary-call", "Unnecessary call / tool overuse", "A call that was not needed."),
    ("hallucinated", "Hallucinated tool or argument", "A tool or argument that does not exist."),
    ("bad-final-answer", "Bad final answer", "The answer is wrong, unsupported or incomplete."),
    ("tool-failure", "Tool failure", "The tool itself failed; the agent is not to blame."),
    ("other", "Other", "Anything else: say what in the note."),
]


def seed(apps, schema_editor):
    ErrorCategory = apps.get_model("traces", "ErrorCategory")
    for position, (slug, name, description) in enumerate(CATEGORIES, start=1):
        ErrorCategory.objects.get_or_create(
            slug=slug, defaults={"name": name, "description": description, "position": position}
        )


class Migration(migrations.Migration):
    dependencies = [("traces", "0003_annotation")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
