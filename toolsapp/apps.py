from django.apps import AppConfig


class ToolsappConfig(AppConfig):
    name = "toolsapp"
    verbose_name = "Tools"
    default_auto_field = "django.db.models.BigAutoField"
