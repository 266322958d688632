from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("v1/", include("inference_app.api.urls")),
    path("", include("inference_app.web_urls")),
    path("billing/", include("billing.urls")),
    path("", include("playground.urls")),
]
