"""Each area's routes live in its own module (datasets and evaluations pages, leaderboards,
arena, API); this file only joins them."""

from importlib import import_module

from django.urls import include, path

_AREAS = ["urls_pages", "urls_leaderboards", "urls_arena", "urls_api"]

urlpatterns = []
for _area in _AREAS:
    try:
        import_module(f"evaluations.{_area}")
    except ModuleNotFoundError:
        continue  # not written yet
    urlpatterns.append(path("", include(f"evaluations.{_area}")))
