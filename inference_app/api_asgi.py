"""The API plane on its own, for uvicorn or granian behind a load balancer's /v1/ route.

    uvicorn inference_app.api_asgi:application --loop uvloop --http httptools
    granian --interface asgi inference_app.api_asgi:application

/v1/ and /otel/ are answered by the API plane (inference_app/api/plane.py), the same code that
runs inside daphne by default. Any other HTTP path (health checks, pages) is still answered, by
Django, so the load balancer's health check can ask this process directly; websockets are
not served here (they stay with daphne, inference_app/asgi.py).
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "inference_app.settings")
django_asgi_app = get_asgi_application()

from inference_app.api.asgi import api_plane, route_api_apart  # noqa: E402

application = route_api_apart(api_app=api_plane(), site_app=django_asgi_app)
