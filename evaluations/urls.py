"""The evaluations app's pages: datasets and evaluations, leaderboards, the arena. (Its /v1 API,
evaluations/urls_api.py, is routed ahead of the API's catch-all in inference_app/urls.py.)"""

from django.urls import include, path

urlpatterns = [
    path("", include("evaluations.urls_pages")),
    path("", include("evaluations.urls_leaderboards")),
    path("", include("evaluations.urls_arena")),
]
