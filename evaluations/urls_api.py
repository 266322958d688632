"""The evaluations API's routes, under /v1/ (see evaluations/api.py).

inference_app/urls.py includes this module before /v1/'s own routes, whose catch-all would
answer these paths 404; evaluations/urls.py includes it too (harmless: the first match wins).
"""

from django.urls import path

from evaluations import api

urlpatterns = [
    path("v1/datasets", api.datasets, name="api-datasets"),
    path("v1/evaluations", api.evaluations, name="api-evaluations"),
    path("v1/evaluations/<int:evaluation_id>", api.evaluation_detail, name="api-evaluation"),
    path(
        "v1/evaluations/<int:evaluation_id>/results",
        api.evaluation_results,
        name="api-evaluation-results",
    ),
    path(
        "v1/evaluations/<int:evaluation_id>/cancel",
        api.evaluation_cancel_view,
        name="api-evaluation-cancel",
    ),
    path("v1/leaderboards", api.leaderboards_view, name="api-leaderboards"),
    path("v1/leaderboards/<int:leaderboard_id>", api.leaderboard_detail, name="api-leaderboard"),
]
