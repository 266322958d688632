"""The API plane: /v1/ and /otel/ as a plain ASGI application.

The endpoints people call thousands of times a second (chat completions, models, the OTLP
endpoint, generation and balance lookups) are answered here straight from the ASGI scope: no
Django request or response objects, no middleware, no URL resolver, no thread hop, and JSON
through orjson (gateway.jsonio). Django is used for what it is good at here: settings and, on
the gateway's own database threads, the ORM.

The same application runs inside daphne next to the pages and websockets (inference_app/asgi.py,
the default: one process, one port) and on its own under uvicorn or granian
(inference_app/api_asgi.py, the scaled set-up behind a load balancer's /v1/ route).

Bodies: a Content-Length past MAX_REQUEST_BYTES is answered 413 before a byte of the body is
read, and a body without one (chunked) is cut off as soon as it passes the limit. Whether the
bytes ever reach us unread depends on the server: uvicorn and granian hand the body over as it
arrives; daphne reads the whole body before it calls any application (README: "Request size").

A client that hangs up is noticed while its request runs (a watch on `receive` once the body is
read): the endpoint is cancelled, and with it the engine request, exactly as before.

/v1/ paths this plane does not route (the evaluations API, /v1/openapi.json, unknown paths)
go to `fallback`, Django's handler for the API (api/asgi.py), behind the same size limit.
"""

from __future__ import annotations

import asyncio
import logging

from django.conf import settings

from inference_app.api import billing_views, generation_views, otel_views, views
from inference_app.api.exchange import (
    ApiRequest,
    ApiResponse,
    BytesResponse,
    ClientDisconnected,
    Endpoint,
    JsonResponse,
    error_response,
    respond,
)
from inference_app.gateway import admission, errors, jsonio

log = logging.getLogger(__name__)

# path -> (method, endpoint); /v1/models/<id> is matched by prefix.
ROUTES: dict[str, tuple[str, Endpoint]] = {
    "/v1/chat/completions": ("POST", views.chat_completions),
    "/v1/models": ("GET", views.models),
    "/v1/billing/balance": ("GET", billing_views.billing_balance),
    "/v1/generation": ("GET", generation_views.generation),
    "/otel/v1/traces": ("POST", otel_views.traces_export),
}

_JSON_HEADERS = [(b"content-type", b"application/json")]
_SSE_HEADERS = [(b"content-type", b"text/event-stream")]


def route(path: str) -> tuple[str, Endpoint] | None:
    found = ROUTES.get(path)
    if found is not None:
        return found
    if path.startswith(views.MODELS_PREFIX) and len(path) > len(views.MODELS_PREFIX):
        return "GET", views.model_detail
    return None


class ApiPlane:
    def __init__(self, *, fallback) -> None:
        self.fallback = fallback

    async def __call__(self, scope, receive, send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await _lifespan(receive, send)
            return
        if kind != "http":
            return
        found = route(scope["path"])
        if found is None:
            await self.fallback(scope, receive, send)
            return
        await Exchange(scope, receive, send).run(*found)


class Exchange:
    """One request through the plane: read (on demand, within the limit), run, write."""

    __slots__ = (
        "scope",
        "receive",
        "send",
        "task",
        "watcher",
        "client_gone",
        "finished",
        "cut_off",
    )

    def __init__(self, scope, receive, send) -> None:
        self.scope = scope
        self.receive = receive
        self.send = send
        self.task: asyncio.Task | None = None
        self.watcher: asyncio.Task | None = None
        self.client_gone = False
        self.finished = False
        self.cut_off = False

    async def run(self, method: str, endpoint: Endpoint) -> None:
        scope = self.scope
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in scope["headers"]
        }
        if scope["method"] != method:
            await self.write(
                error_response(errors.method_not_allowed(scope["method"], scope["path"]))
            )
            return
        declared = headers.get("content-length")
        if declared is not None:
            # Digits only (RFC 9110): int() would also take "-1", "+10", "1_0" and " 10 ".
            if not (declared.isascii() and declared.isdigit()):
                await self.write(
                    error_response(errors.invalid_request("Invalid Content-Length header."))
                )
                return
            if admission.too_large(int(declared)):
                # Refused unread; the connection closes, so the server need not read it either.
                await self.refuse_too_large()
                return
        request = ApiRequest(
            method=method,
            path=scope["path"],
            headers=headers,
            query_string=scope.get("query_string", b"").decode("latin-1"),
            reader=self.read_body,
        )
        self.task = asyncio.current_task()
        try:
            response = await respond(endpoint, request)
            if self.cut_off:
                response.headers["connection"] = "close"
            await self.write(response)
        except ClientDisconnected:
            return
        except asyncio.CancelledError:
            if not self.client_gone:
                raise
            # The watch cancelled us because the client left: the endpoint's clean-up has run.
            self.task.uncancel()
        finally:
            self.finished = True
            if self.watcher is not None:
                self.watcher.cancel()

    async def read_body(self) -> bytes:
        limit = settings.MAX_REQUEST_BYTES
        chunks: list[bytes] = []
        size = 0
        receive = self.receive
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnected()
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > limit:
                    self.cut_off = True
                    # Cut off here: the rest is never read (the response closes the connection).
                    raise errors.request_too_large(limit)
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        self.watcher = asyncio.ensure_future(self.watch_disconnect())
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def watch_disconnect(self) -> None:
        """Cancel the request when its client hangs up (servers send http.disconnect)."""
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                if not self.finished and self.task is not None:
                    self.client_gone = True
                    self.task.cancel()
                return

    async def refuse_too_large(self) -> None:
        response = error_response(errors.request_too_large(settings.MAX_REQUEST_BYTES))
        response.headers["connection"] = "close"
        await self.write(response)

    async def write(self, response: ApiResponse) -> None:
        send = self.send
        if isinstance(response, JsonResponse):
            body = jsonio.dumps(response.payload)
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status,
                    "headers": _headers(_JSON_HEADERS, response.headers, len(body)),
                }
            )
            self.finished = True
            await send({"type": "http.response.body", "body": body})
            return
        if isinstance(response, BytesResponse):
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status,
                    "headers": _headers(
                        [(b"content-type", response.content_type.encode("latin-1"))],
                        response.headers,
                        len(response.body),
                    ),
                }
            )
            self.finished = True
            await send({"type": "http.response.body", "body": response.body})
            return
        events = response.events
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status,
                    "headers": _headers(_SSE_HEADERS, response.headers, None),
                }
            )
            async for event in events:
                await send({"type": "http.response.body", "body": event, "more_body": True})
            self.finished = True
            await send({"type": "http.response.body", "body": b""})
        finally:
            await events.aclose()


def _headers(base: list, extra: dict[str, str], length: int | None) -> list:
    headers = list(base)
    if length is not None:
        headers.append((b"content-length", str(length).encode()))
    for name, value in extra.items():
        headers.append((name.lower().encode("latin-1"), str(value).encode("latin-1")))
    return headers


async def _lifespan(receive, send) -> None:
    """uvicorn and granian announce start and stop; there is nothing to set up (Django is set
    up on import, the gateway's threads and clients start on first use)."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
