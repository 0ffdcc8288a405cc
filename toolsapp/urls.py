from django.urls import path

from . import views, views_import

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
]
