from django.apps import AppConfig


class ToolsappConfig(AppConfig):
    name = "toolsapp"
    verbose_name = "Tools"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import signals  # noqa: F401 - connects the retrieval index's change marks
