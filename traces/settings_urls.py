from django.urls import path

from traces.settings_views import trace_settings

urlpatterns = [
    path("settings", trace_settings, name="traces_settings"),
]
