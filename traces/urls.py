from django.urls import path

from . import views

app_name = "traces"

urlpatterns = [
    path("traces/", views.trace_list_view, name="trace_list"),
    path("traces/<uuid:trace_id>/", views.trace_detail_view, name="trace_detail"),
    path("traces/<uuid:trace_id>/steps/<int:seq>/", views.step_detail_view, name="step_detail"),
    path("traces/<uuid:trace_id>/cancel/", views.trace_cancel_view, name="trace_cancel"),
    path("traces/tool-calls/", views.tool_calls_view, name="tool_calls"),
    path("api/traces/<uuid:trace_id>", views.api_trace, name="api_trace"),
    path("api/traces/<uuid:trace_id>/steps", views.api_trace_steps, name="api_trace_steps"),
    path(
        "api/traces/<uuid:trace_id>/steps/<int:seq>/full/<str:field>",
        views.api_step_full,
        name="api_step_full",
    ),
    path("api/traces/<uuid:trace_id>/cancel", views.api_trace_cancel, name="api_trace_cancel"),
]
