from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from . import dashboard, views

urlpatterns = [
    path("", dashboard.dashboard_view, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("tokens/", views.token_list, name="token_list"),
    path("tokens/<int:pk>/revoke/", views.token_revoke, name="token_revoke"),
    path("admin/", admin.site.urls),
    path("", include("traces.urls")),
    path("", include("agents.urls")),
    path("", include("toolsapp.urls")),
]
