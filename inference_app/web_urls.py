from django.urls import path

from inference_app import health

# Non-API pages of inference_app: /healthz, account settings (API keys).
urlpatterns: list = [
    path("healthz", health.healthz, name="healthz"),
]
