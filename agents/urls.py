from django.urls import path

from . import views, views_toolmaker

app_name = "agents"

urlpatterns = [
    path("agents/", views.agent_list_view, name="agent_list"),
    path("agents/<slug:slug>/", views.agent_detail_view, name="agent_detail"),
    path("agents/<slug:slug>/run/", views.agent_run_view, name="agent_run"),
    path("api/runs", views.api_runs, name="api_runs"),
    path("tool-maker/", views_toolmaker.tool_maker_view, name="tool_maker"),
]
