from django.urls import path, re_path

from inference_app.api import billing_views, generation_views, views
from inference_app.api.exchange import django_view

# The OpenAI-compatible API, mounted at /v1/. Servers send these paths to the API plane
# (plane.py), which runs the same endpoints without Django; this URLconf serves Django's test
# client, reverse(), and the /v1 paths the plane hands back (the catch-all below).
urlpatterns = [
    path("models", django_view(views.models, "GET"), name="api-models"),
    path("models/<path:model_id>", django_view(views.model_detail, "GET"), name="api-model-detail"),
    path(
        "chat/completions",
        django_view(views.chat_completions, "POST"),
        name="api-chat-completions",
    ),
    path(
        "billing/balance",
        django_view(billing_views.billing_balance, "GET"),
        name="api-billing-balance",
    ),
    path("generation", django_view(generation_views.generation, "GET"), name="api-generation"),
]

# Anything else under /v1/ answers in OpenAI's error shape, not Django's HTML 404.
# (Kept last: routes added above it take precedence.)
# [\s\S], not ".": a path with an encoded newline is ours too (JSON 404), not the site's HTML
# page (an inline (?s) flag would make the URLconf unreversible).
urlpatterns.append(re_path(r"^(?P<path>[\s\S]*)$", views.not_found))
