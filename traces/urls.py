from django.urls import path

from . import annotation_views as annotation
from . import api_ingest, views

app_name = "traces"

urlpatterns = [
    path("traces/", views.trace_list_view, name="trace_list"),
    path("traces/diff/", views.trace_diff_view, name="trace_diff"),
    path("traces/bulk/", views.trace_bulk_view, name="trace_bulk"),
    path("traces/saved-filters/", views.saved_filter_view, name="saved_filter"),
    path("traces/<uuid:trace_id>/", views.trace_detail_view, name="trace_detail"),
    path("traces/<uuid:trace_id>/steps/<int:seq>/", views.step_detail_view, name="step_detail"),
    path("traces/<uuid:trace_id>/search/", views.trace_search_view, name="trace_search"),
    path("traces/<uuid:trace_id>/cancel/", views.trace_cancel_view, name="trace_cancel"),
    path("traces/tool-calls/", views.tool_calls_view, name="tool_calls"),
    path("v1/traces", api_ingest.otlp_traces_view, name="otlp_traces"),
    path("api/traces/import", api_ingest.api_trace_import, name="api_trace_import"),
    path("api/traces/<uuid:trace_id>/export", api_ingest.api_trace_export, name="api_trace_export"),
    path(
        "api/traces/<uuid:trace_id>/steps/<int:seq>/full/<str:field>",
        views.api_step_full,
        name="api_step_full",
    ),
    # Annotation: queues, the annotator's page, adjudication, exports, and their API.
    path("queues/", annotation.queue_list_view, name="queue_list"),
    path("queues/new/", annotation.queue_create_view, name="queue_create"),
    path("queues/<int:queue_id>/", annotation.queue_detail_view, name="queue_detail"),
    path("queues/<int:queue_id>/annotate/", annotation.annotate_view, name="annotate"),
    path(
        "queues/<int:queue_id>/items/<int:item_id>/label/",
        annotation.annotate_label_view,
        name="annotate_label",
    ),
    path(
        "queues/<int:queue_id>/items/<int:item_id>/trace-label/",
        annotation.annotate_trace_view,
        name="annotate_trace",
    ),
    path(
        "queues/<int:queue_id>/items/<int:item_id>/skip/",
        annotation.annotate_skip_view,
        name="annotate_skip",
    ),
    path(
        "queues/<int:queue_id>/adjudicate/<uuid:trace_id>/<int:seq>/",
        annotation.adjudicate_view,
        name="adjudicate",
    ),
    path("queues/<int:queue_id>/suggest/", annotation.queue_suggest_view, name="queue_suggest"),
    path("exports/", annotation.export_create_view, name="export_create"),
    path("exports/<uuid:export_id>/", annotation.export_detail_view, name="export_detail"),
    path(
        "exports/<uuid:export_id>/download/",
        annotation.export_download_view,
        name="export_download",
    ),
    path("api/queues", annotation.api_queues, name="api_queues"),
    path("api/queues/<int:queue_id>/next", annotation.api_queue_next, name="api_queue_next"),
    path(
        "api/queues/<int:queue_id>/agreement",
        annotation.api_queue_agreement,
        name="api_queue_agreement",
    ),
    path("api/annotations", annotation.api_annotations, name="api_annotations"),
    path(
        "api/traces/<uuid:trace_id>/annotations",
        annotation.api_trace_annotations,
        name="api_trace_annotations",
    ),
]
