"""The error taxonomy's starting categories. Seeded by a data migration; the same
function restores any that are missing (a flushed test database, a fresh demo)."""

from __future__ import annotations

DEFAULT_CATEGORIES = [
    ("wrong-tool", "Wrong tool", "A different tool should have been called."),
    ("wrong-arguments", "Wrong arguments", "The right tool with wrong or missing arguments."),
    ("missing-call", "Missing call", "A tool call that should have been made was not."),
    ("unnecessary-call", "Unnecessary call / tool overuse", "A call that was not needed."),
    ("hallucinated", "Hallucinated tool or argument", "A tool or argument that does not exist."),
    ("bad-final-answer", "Bad final answer", "The answer is wrong, unsupported or incomplete."),
    ("tool-failure", "Tool failure", "The tool itself failed; the agent is not to blame."),
    ("other", "Other", "Anything else: say what in the note."),
]


def error_categories_seed(model=None) -> None:
    """Create the default categories that do not exist yet. Ones an admin renamed or
    switched off are left alone (matched by slug). ``model`` is the migration's
    historical ErrorCategory, or (by default) the real one."""
    if model is None:
        from .annotation_models import ErrorCategory as model
    for position, (slug, name, description) in enumerate(DEFAULT_CATEGORIES, start=1):
        model.objects.get_or_create(
            slug=slug, defaults={"name": name, "description": description, "position": position}
        )
