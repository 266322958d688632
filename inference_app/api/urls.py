from django.urls import path, re_path

from inference_app.api import billing_views, generation_views, views

# The OpenAI-compatible API, mounted at /v1/.
urlpatterns = [
    path("models", views.models, name="api-models"),
    path("models/<path:model_id>", views.model_detail, name="api-model-detail"),
    path("chat/completions", views.chat_completions, name="api-chat-completions"),
    path("billing/balance", billing_views.billing_balance, name="api-billing-balance"),
    path("generation", generation_views.generation, name="api-generation"),
]

# Anything else under /v1/ answers in OpenAI's error shape, not Django's HTML 404.
# (Kept last: routes added above it take precedence.)
# [\s\S], not ".": a path with an encoded newline is ours too (JSON 404), not the site's HTML
# page (an inline (?s) flag would make the URLconf unreversible).
urlpatterns.append(re_path(r"^(?P<path>[\s\S]*)$", views.not_found))
