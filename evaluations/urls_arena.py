"""The arena's pages: the leaderboard, a blind battle's set-up, the battle and its vote."""

from django.urls import path, re_path

from evaluations import arena_views

# A match id: a short token (evaluations.arena.match_create makes it).
MATCH = r"(?P<match_id>[0-9A-Za-z_-]{1,32})"

urlpatterns = [
    path("arena/", arena_views.arena_board_page, name="arena"),
    path("arena/new", arena_views.battle_new, name="arena_new"),
    path("arena/matches", arena_views.match_start, name="arena_match_start"),
    re_path(rf"^arena/battle/{MATCH}$", arena_views.battle_page, name="arena_battle"),
    re_path(rf"^arena/matches/{MATCH}/vote$", arena_views.vote_page, name="arena_vote"),
]
