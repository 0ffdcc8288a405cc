from django.contrib import admin

from .models import Step, Trace


class StepInline(admin.TabularInline):
    model = Step
    fields = ["seq", "kind", "name", "status", "parent", "started_at", "ended_at"]
    readonly_fields = fields
    extra = 0
    max_num = 0
    show_change_link = True


@admin.register(Trace)
class TraceAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "name",
        "status",
        "source",
        "step_count",
        "created_by",
        "created_at",
        "ended_at",
    ]
    list_filter = ["status", "source", "agent_slug", "created_at"]
    search_fields = ["id", "name", "input", "output", "error"]
    readonly_fields = ["id", "created_at", "heartbeat_at", "step_count"]
    inlines = [StepInline]


@admin.register(Step)
class StepAdmin(admin.ModelAdmin):
    list_display = ["trace", "seq", "kind", "name", "status", "started_at"]
    list_filter = ["kind", "status"]
    search_fields = ["name", "error", "trace__id"]
    raw_id_fields = ["trace", "parent"]
