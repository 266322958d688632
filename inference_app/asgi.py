"""ASGI entry point (daphne, `make run`): the API plane for /v1/ and /otel/, the pages through
Django, websockets through Channels with origin and session checks."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "inference_app.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from inference_app import daphne_requests  # noqa: E402
from inference_app.api.asgi import api_plane, route_api_apart  # noqa: E402
from inference_app.ws_origin import SameOriginValidator  # noqa: E402
from playground.routing import websocket_urlpatterns  # noqa: E402

daphne_requests.install()

application = ProtocolTypeRouter(
    {
        # /v1/ and /otel/ go to the API plane (inference_app/api/plane.py): raw ASGI, no
        # Django request objects, middleware or per-request thread; oversized bodies refused
        # before they are read.
        "http": route_api_apart(api_app=api_plane(), site_app=django_asgi_app),
        "websocket": SameOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
