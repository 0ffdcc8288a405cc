from django.contrib import admin

from .models import Tool, Toolset


@admin.register(Tool)
class ToolAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "enabled", "timeout_seconds", "updated_at"]
    list_filter = ["kind", "enabled"]
    search_fields = ["name", "description"]


@admin.register(Toolset)
class ToolsetAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "tool_count", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    filter_horizontal = ["tools"]

    @admin.display(description="tools")
    def tool_count(self, obj: Toolset) -> int:
        return obj.tools.count()
