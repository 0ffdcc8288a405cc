from django.urls import path

from . import views

app_name = "toolsapp"

urlpatterns = [
    path("tools/", views.tool_list_view, name="tool_list"),
    path("tools/<str:name>/", views.tool_detail_view, name="tool_detail"),
]
