from django.apps import AppConfig


class TooltrailConfig(AppConfig):
    name = "tooltrail"
    verbose_name = "Tooltrail (accounts and API tokens)"
    default_auto_field = "django.db.models.BigAutoField"
