from django.urls import include, path

from evaluations import views

_patterns = [
    path("", views.evaluations_home, name="home"),
    path("new", views.evaluation_new, name="new"),
    path("estimate", views.evaluation_estimate_panel, name="estimate"),
    path("datasets/new", views.dataset_new, name="dataset_new"),
    path("datasets/from-calls", views.dataset_new_from_calls, name="dataset_from_calls"),
    path("datasets/<int:dataset_id>", views.dataset_detail, name="dataset"),
    path("<int:evaluation_id>", views.evaluation_detail, name="evaluation"),
    path("<int:evaluation_id>/cancel", views.evaluation_cancel_view, name="cancel"),
    path("<int:evaluation_id>/resume", views.evaluation_resume_view, name="resume"),
]

# /evaluations/..., named evaluations:<name>.
urlpatterns = [path("evaluations/", include((_patterns, "evaluations")))]
