from django.urls import path

from . import api_ingest, views

app_name = "traces"

urlpatterns = [
    path("traces/", views.trace_list_view, name="trace_list"),
    path("traces/<uuid:trace_id>/", views.trace_detail_view, name="trace_detail"),
    path("traces/<uuid:trace_id>/steps/<int:seq>/", views.step_detail_view, name="step_detail"),
    path("traces/<uuid:trace_id>/cancel/", views.trace_cancel_view, name="trace_cancel"),
    path("api/traces/<uuid:trace_id>", views.api_trace, name="api_trace"),
    path("v1/traces", api_ingest.otlp_traces_view, name="otlp_traces"),
    path("api/traces", api_ingest.api_traces, name="api_traces"),
    path("api/traces/import", api_ingest.api_trace_import, name="api_trace_import"),
    path("api/traces/<uuid:trace_id>/export", api_ingest.api_trace_export, name="api_trace_export"),
    path("api/traces/<uuid:trace_id>/steps", views.api_trace_steps, name="api_trace_steps"),
    path("api/traces/<uuid:trace_id>/cancel", views.api_trace_cancel, name="api_trace_cancel"),
]
