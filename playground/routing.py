from django.urls import path  # noqa: F401

# Websocket routes for the Playground and Compare views.
websocket_urlpatterns: list = []
