"""A Django ASGI handler for /v1/ that runs no middleware.

The API authenticates by key and uses no session, CSRF, messages, static files or htmx; yet in
async mode every sync-only middleware in settings.MIDDLEWARE costs a hop to a thread and back on
each request (about 10% of the gateway's CPU per request in bench/profile.py). URL routing,
views and exception handling are Django's own, unchanged.
"""

from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.exception import convert_exception_to_response
from django.http.request import split_domain_port, validate_host


class MiddlewareFreeASGIHandler(ASGIHandler):
    def load_middleware(self, is_async: bool = False) -> None:
        # BaseHandler.load_middleware with an empty MIDDLEWARE list.
        self._view_middleware = []
        self._template_response_middleware = []
        self._exception_middleware = []
        get_response = self._get_response_async if is_async else self._get_response
        self._middleware_chain = convert_exception_to_response(get_response)


def route_api_apart(*, api_app, site_app, prefix: str = "/v1/"):
    """An ASGI app sending `prefix` paths to `api_app` and everything else to `site_app`.

    A request whose Host is not in ALLOWED_HOSTS goes to `site_app`, whose middleware refuses it
    as for any page: skipping the middleware must not skip that check.
    """

    async def app(scope, receive, send):
        if scope["path"].startswith(prefix) and _host_allowed(scope):
            await api_app(scope, receive, send)
        else:
            await site_app(scope, receive, send)

    return app


def _host_allowed(scope) -> bool:
    host = next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"host"), "")
    domain, _ = split_domain_port(host)
    return bool(domain) and validate_host(domain, settings.ALLOWED_HOSTS)
