from django.urls import path

from . import views, views_build, views_toolmaker
from .evals import views as eval_views
from .training import views as training_views

app_name = "agents"

urlpatterns = [
    path("agents/", views.agent_list_view, name="agent_list"),
    path("agents/new/", views_build.agent_create_view, name="agent_create"),
    path("agents/<slug:slug>/", views.agent_detail_view, name="agent_detail"),
    path("agents/<slug:slug>/run/", views.agent_run_view, name="agent_run"),
    path("agents/<slug:slug>/edit/", views_build.agent_edit_view, name="agent_edit"),
    path("agents/<slug:slug>/duplicate/", views_build.agent_duplicate_view, name="agent_duplicate"),
    path("agents/<slug:slug>/delete/", views_build.agent_delete_view, name="agent_delete"),
    path(
        "agents/<slug:slug>/versions/<int:number>/",
        views_build.agent_version_view,
        name="agent_version",
    ),
    path("endpoints/", views_build.endpoint_list_view, name="endpoint_list"),
    path("endpoints/new/", views_build.endpoint_create_view, name="endpoint_create"),
    path("endpoints/<int:pk>/", views_build.endpoint_detail_view, name="endpoint_detail"),
    path("endpoints/<int:pk>/edit/", views_build.endpoint_edit_view, name="endpoint_edit"),
    path(
        "endpoints/<int:pk>/duplicate/",
        views_build.endpoint_duplicate_view,
        name="endpoint_duplicate",
    ),
    path("endpoints/<int:pk>/delete/", views_build.endpoint_delete_view, name="endpoint_delete"),
    path("endpoints/<int:pk>/test/", views_build.endpoint_test_view, name="endpoint_test"),
    path("traces/<uuid:trace_id>/again/", views_build.run_again_view, name="run_again"),
    path("tool-maker/", views_toolmaker.tool_maker_view, name="tool_maker"),
    path("datasets/", eval_views.dataset_list_view, name="dataset_list"),
    path("datasets/from-queue/", eval_views.dataset_from_queue_view, name="dataset_from_queue"),
    path("datasets/<slug:name>/", eval_views.dataset_detail_view, name="dataset_detail"),
    path("experiments/", eval_views.experiment_list_view, name="experiment_list"),
    path("experiments/new/", eval_views.experiment_new_view, name="experiment_new"),
    path("experiments/compare/", eval_views.experiment_compare_view, name="experiment_compare"),
    path("experiments/<int:pk>/", eval_views.experiment_detail_view, name="experiment_detail"),
    path("artifacts/", training_views.artifact_list_view, name="artifact_list"),
    path("artifacts/<slug:name>/", training_views.artifact_detail_view, name="artifact_detail"),
    path(
        "artifacts/<slug:name>/promote/",
        training_views.artifact_promote_view,
        name="artifact_promote",
    ),
    path("jobs/", training_views.job_list_view, name="job_list"),
    path("jobs/new/<str:kind>/", training_views.job_new_view, name="job_new"),
    path("jobs/<int:pk>/", training_views.job_detail_view, name="job_detail"),
    path("jobs/<int:pk>/<str:action>/", training_views.job_action_view, name="job_action"),
    path(
        "experiments/<int:pk>/<str:action>/",
        eval_views.experiment_action_view,
        name="experiment_action",
    ),
    path(
        "traces/<uuid:trace_id>/steps/<int:seq>/fork/",
        views.trace_fork_view,
        name="trace_fork",
    ),
]
