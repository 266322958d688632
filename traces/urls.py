from django.urls import path, re_path

from traces import views

app_name = "traces"

urlpatterns = [
    path("", views.traces_list, name="list"),
    # Span ids are 16 lowercase hex digits (W3C); other words under /traces/ stay free.
    re_path(r"^(?P<span_id>[0-9a-f]{16})$", views.traces_detail, name="detail"),
]
