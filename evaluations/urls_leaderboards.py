from django.urls import include, path

from evaluations import leaderboard_views

_patterns = [
    path("", leaderboard_views.leaderboards_list, name="list"),
    path("<int:leaderboard_id>", leaderboard_views.leaderboard_detail, name="detail"),
    path("<int:leaderboard_id>/edit", leaderboard_views.leaderboard_edit, name="edit"),
]

# /leaderboards/ and /leaderboards/<id>, named leaderboards:list and leaderboards:detail.
urlpatterns = [path("leaderboards/", include((_patterns, "leaderboards")))]
