from django.urls import path

from . import views

app_name = "toolsapp"

urlpatterns = [
    path("tools/", views.tool_list_view, name="tool_list"),
    path("tools/import/openapi/", views.openapi_import_view, name="openapi_import"),
    path("tools/<str:name>/", views.tool_detail_view, name="tool_detail"),
    path("tools/<str:name>/try/", views.tool_try_view, name="tool_try"),
]
