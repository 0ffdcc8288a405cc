from django.urls import path

from . import views, views_import, views_toolsets

app_name = "toolsapp"

urlpatterns = [
    path("tools/", views.tool_list_view, name="tool_list"),
    path("tools/import/openapi/", views.openapi_import_view, name="openapi_import"),
    path("tools/mcp/import/", views_import.mcp_import_view, name="mcp_import"),
    path("tools/code/<str:name>/", views_import.code_tool_view, name="code_tool"),
    path(
        "tools/code/<str:name>/activate/",
        views_import.code_tool_activate_view,
        name="code_tool_activate",
    ),
    path("tools/<str:name>/", views.tool_detail_view, name="tool_detail"),
    path("tools/<str:name>/try/", views.tool_try_view, name="tool_try"),
    path("toolsets/", views_toolsets.toolset_list_view, name="toolset_list"),
    path("toolsets/new/", views_toolsets.toolset_create_view, name="toolset_create"),
    path("toolsets/<slug:slug>/", views_toolsets.toolset_detail_view, name="toolset_detail"),
    path("toolsets/<slug:slug>/edit/", views_toolsets.toolset_edit_view, name="toolset_edit"),
    path(
        "toolsets/<slug:slug>/duplicate/",
        views_toolsets.toolset_duplicate_view,
        name="toolset_duplicate",
    ),
    path("toolsets/<slug:slug>/delete/", views_toolsets.toolset_delete_view, name="toolset_delete"),
]
