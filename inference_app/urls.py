from django.contrib import admin
from django.urls import include, path

from inference_app.api.exchange import django_view
from inference_app.api.openapi import openapi_json
from inference_app.api.otel_views import traces_export

urlpatterns = [
    path("admin/", admin.site.urls),
    # Before the API's own routes, whose catch-all would answer it 404.
    path("v1/openapi.json", openapi_json, name="api-openapi"),
    # The evaluations API (/v1/datasets, /v1/evaluations, /v1/leaderboards), before the
    # API's catch-all too.
    path("", include("evaluations.urls_api")),
    path("v1/", include("inference_app.api.urls")),
    path("otel/v1/traces", django_view(traces_export, "POST"), name="otel-traces"),
    path("", include("inference_app.web_urls")),
    path("billing/", include("billing.urls")),
    path("traces/", include("traces.urls")),
    path("traces/", include("traces.settings_urls")),
    path("", include("playground.urls")),
    path("", include("evaluations.urls")),
]
