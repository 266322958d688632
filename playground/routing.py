from django.urls import path

from playground.consumers import ChatConsumer

# Websocket routes for the Playground and Compare views.
websocket_urlpatterns = [
    path("ws/playground/", ChatConsumer.as_asgi()),
]
