from django.urls import path  # noqa: F401

# Non-API pages of inference_app: /healthz, account settings (API keys).
urlpatterns: list = []
