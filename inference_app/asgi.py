"""ASGI entry point: HTTP through Django, websockets through Channels with origin and session checks."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "inference_app.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from inference_app import daphne_requests  # noqa: E402
from inference_app.api.asgi import ApiASGIHandler, route_api_apart  # noqa: E402
from inference_app.gateway.body_limit import RequestSizeLimit  # noqa: E402
from inference_app.ws_origin import SameOriginValidator  # noqa: E402
from playground.routing import websocket_urlpatterns  # noqa: E402

daphne_requests.install()

application = ProtocolTypeRouter(
    {
        # Oversized /v1/ bodies are refused before Django reads them.
        # /v1/ skips the site's middleware (sessions, CSRF, static files…) and Django's
        # per-request thread: it needs neither (see inference_app/api/asgi.py).
        "http": RequestSizeLimit(
            route_api_apart(api_app=ApiASGIHandler(), site_app=django_asgi_app)
        ),
        "websocket": SameOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
