from django.urls import path, re_path

from inference_app import health
from traces.views import call_link

# Non-API pages of inference_app: /healthz, account settings (API keys).
urlpatterns: list = [
    path("healthz", health.healthz, name="healthz"),
    # The seed's link to a call; its page is /traces/<span_id>.
    re_path(
        r"^(?P<team>[^/]+)/(?P<project>[^/]+)/r/call/(?P<span_id>[0-9a-f]{16})$",
        call_link,
        name="call_link",
    ),
]
