from django.urls import path

from evaluations.consumers import EvaluationProgressConsumer
from playground.consumers import ChatConsumer

# Websocket routes for the Playground and Compare views.
websocket_urlpatterns = [
    path("ws/playground/", ChatConsumer.as_asgi()),
    path("ws/evaluations/<int:evaluation_id>/", EvaluationProgressConsumer.as_asgi()),
]
