"""The API plane's wiring, and a Django ASGI handler for /v1/ without the per-request work the API does not need.

The API authenticates by key and uses no session, CSRF, messages, static files or htmx; yet in
async mode every sync-only middleware in settings.MIDDLEWARE costs a hop to a thread and back on
each request (about 10% of the gateway's CPU per request in bench/profile.py). Django's ASGI
handler also opens a thread-sensitive context per request (a new executor thread) and sends
request_started/request_finished through two more thread hops, for receivers that look after
the ORM connections of the request's own thread. /v1/ code never touches the ORM there: its
database work runs on the gateway's long-lived threads (gateway.db_threads), which look after
their connections themselves. URL routing, views, exception handling and the detection of a
client that leaves are Django's own, unchanged.
"""

import asyncio

from django.conf import settings
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.exception import convert_exception_to_response
from django.http.request import split_domain_port, validate_host
from django.urls import set_script_prefix

from inference_app.gateway.admission import scope_header
from inference_app.gateway.body_limit import API_PREFIXES, RequestSizeLimit


class ApiASGIHandler(ASGIHandler):
    def load_middleware(self, is_async: bool = False) -> None:
        # BaseHandler.load_middleware with an empty MIDDLEWARE list.
        self._view_middleware = []
        self._template_response_middleware = []
        self._exception_middleware = []
        get_response = self._get_response_async if is_async else self._get_response
        self._middleware_chain = convert_exception_to_response(get_response)

    async def __call__(self, scope, receive, send):
        # ASGIHandler.__call__ without its ThreadSensitiveContext (see the module docstring).
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        await self.handle(scope, receive, send)

    async def handle(self, scope, receive, send):
        """ASGIHandler.handle (Django 5.2) without the request_started signal and with the
        response closed on the event loop: no thread hop either way."""
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            body_file.close()
            await self.send_response(error_response, send)
            return

        async def process_request(request, send):
            response = await self.run_get_response(request)
            try:
                await self.send_response(response, send)
            except asyncio.CancelledError:
                pass  # the client left while the response was being sent
            return response

        # A client that leaves cancels the view (and with it the engine request).
        tasks = [
            asyncio.create_task(self.listen_for_disconnect(receive)),
            asyncio.create_task(process_request(request, send)),
        ]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            if task.done():
                try:
                    task.result()
                except RequestAborted:
                    pass
                except AssertionError:
                    body_file.close()
                    raise
            else:
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
        if not tasks[1].cancelled():
            tasks[
                1
            ].result().close()  # resource closers; request_finished's receivers are cheap here
        body_file.close()


def api_plane():
    """The API plane (plane.py), with Django's API handler, size-limited, for the /v1/ paths
    it does not route itself (the evaluations API, the OpenAPI document, unknown paths)."""
    from inference_app.api.plane import ApiPlane

    return ApiPlane(fallback=RequestSizeLimit(ApiASGIHandler()))


def route_api_apart(*, api_app, site_app, prefix: str | tuple[str, ...] = API_PREFIXES):
    """An ASGI app sending `prefix` paths (/v1/ and /otel/, the OTLP endpoint) to `api_app`
    and everything else to `site_app`.

    A request whose Host is not in ALLOWED_HOSTS goes to `site_app`, whose middleware refuses it
    as for any page: skipping the middleware must not skip that check.
    """

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            # uvicorn and granian ask; Django's handler would refuse the scope.
            await api_app(scope, receive, send)
        elif scope["path"].startswith(prefix) and _host_allowed(scope):
            await api_app(scope, receive, send)
        else:
            await site_app(scope, receive, send)

    return app


# Host header -> allowed, for the ALLOWED_HOSTS in force (a few hosts, checked on every
# request: Django's validate_host was 2% of the plane's CPU). Bounded: Host is the client's.
_hosts_checked: dict[tuple[str, int], bool] = {}
_HOSTS_REMEMBERED = 256


def _host_allowed(scope) -> bool:
    host = scope_header(scope, "host") or ""
    allowed_hosts = settings.ALLOWED_HOSTS
    key = (host, id(allowed_hosts))
    allowed = _hosts_checked.get(key)
    if allowed is None:
        domain, _ = split_domain_port(host)
        allowed = bool(domain) and validate_host(domain, allowed_hosts)
        if len(_hosts_checked) >= _HOSTS_REMEMBERED:
            _hosts_checked.clear()
        _hosts_checked[key] = allowed
    return allowed
