from django.contrib import admin
from django.db import transaction

from .models import Step, Trace
from .rollup_services import rollup_invalidate


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

    # Deleting here, as traces_delete does, takes the traces' hours out of the dashboard's
    # roll-up first.
    def delete_model(self, request, obj) -> None:
        with transaction.atomic():
            rollup_invalidate(trace_ids=[obj.pk])
            super().delete_model(request, obj)

    def delete_queryset(self, request, queryset) -> None:
        with transaction.atomic():
            rollup_invalidate(trace_ids=queryset.values_list("pk", flat=True))
            super().delete_queryset(request, queryset)


@admin.register(Step)
class StepAdmin(admin.ModelAdmin):
    list_display = ["trace", "seq", "kind", "name", "status", "started_at"]
    list_filter = ["kind", "status"]
    search_fields = ["name", "error", "trace__id"]
    raw_id_fields = ["trace", "parent"]


# --- annotation -------------------------------------------------------------------------
from .annotation_models import (  # noqa: E402 - grouped with the admin classes that use them
    Annotation,
    AnnotationQueue,
    AnnotationRevision,
    ErrorCategory,
    Export,
)


@admin.register(ErrorCategory)
class ErrorCategoryAdmin(admin.ModelAdmin):
    """The editable error taxonomy: rename, reorder, add, or switch off (not delete:
    labels keep pointing at their category)."""

    list_display = ["name", "slug", "position", "active"]
    list_editable = ["position", "active"]
    prepopulated_fields = {"slug": ["name"]}

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class AnnotationRevisionInline(admin.TabularInline):
    model = AnnotationRevision
    fields = ["version", "author", "data", "created_at"]
    readonly_fields = fields
    extra = 0
    max_num = 0


@admin.register(Annotation)
class AnnotationAdmin(admin.ModelAdmin):
    """Read-only here: labels change through the services (versions, history, broadcast)."""

    list_display = [
        "trace",
        "step",
        "author",
        "role",
        "verdict",
        "category",
        "version",
        "updated_at",
    ]
    list_filter = ["role", "verdict", "category"]
    raw_id_fields = ["trace", "step", "queue"]
    inlines = [AnnotationRevisionInline]

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(AnnotationQueue)
class AnnotationQueueAdmin(admin.ModelAdmin):
    list_display = ["name", "source", "step_kinds", "overlap", "assignment", "created_at"]
    filter_horizontal = ["annotators"]


@admin.register(Export)
class ExportAdmin(admin.ModelAdmin):
    list_display = ["id", "format", "queue", "status", "progress", "created_by", "created_at"]
    list_filter = ["format", "status"]
