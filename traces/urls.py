from django.urls import path

from . import views

app_name = "traces"

urlpatterns = [
    path("traces/", views.trace_list_view, name="trace_list"),
    path("traces/<uuid:trace_id>/", views.trace_detail_view, name="trace_detail"),
    path("traces/<uuid:trace_id>/steps/<int:seq>/", views.step_detail_view, name="step_detail"),
    path("traces/<uuid:trace_id>/cancel/", views.trace_cancel_view, name="trace_cancel"),
]
