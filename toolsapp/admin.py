from django.contrib import admin

from .models import HttpToolSource, McpServer, Tool, Toolset


@admin.register(Tool)
class ToolAdmin(admin.ModelAdmin):
    list_display = ["name", "source", "kind", "status", "timeout_seconds", "updated_at"]
    list_filter = ["kind", "status"]
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


@admin.register(HttpToolSource)
class HttpToolSourceAdmin(admin.ModelAdmin):
    list_display = ["name", "base_url", "auth", "updated_at"]
    search_fields = ["name", "title"]
    exclude = ["spec"]


@admin.register(McpServer)
class McpServerAdmin(admin.ModelAdmin):
    list_display = ["name", "transport", "enabled", "last_synced_at"]
    search_fields = ["name"]
