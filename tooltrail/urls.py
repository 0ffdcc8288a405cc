from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

from . import dashboard, views
from .api_root import api, api_docs_view

urlpatterns = [
    path("", dashboard.dashboard_view, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("favicon.ico", RedirectView.as_view(url=static("favicon.svg"), permanent=True)),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("tokens/", views.token_list, name="token_list"),
    path("tokens/<int:pk>/revoke/", views.token_revoke, name="token_revoke"),
    path("admin/", admin.site.urls),
    path("", include("traces.urls")),
    path("", include("agents.urls")),
    path("", include("toolsapp.urls")),
    path("api/docs", api_docs_view, name="api_docs"),
    # Last, so explicit /api/... paths above (plain Django API views) win.
    path("api/", api.urls),
]

# A 400 that says why (and a 413 for a body over the limit), JSON on the API.
handler400 = "tooltrail.views.bad_request"
handler403 = "tooltrail.views.error_403"
handler404 = "tooltrail.views.error_404"
handler500 = "tooltrail.views.error_500"
