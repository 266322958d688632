"""What an API endpoint takes and gives, whichever server runs it.

The API's endpoints (inference_app/api/views.py and its neighbours) are plain async functions
from an `ApiRequest` to a `JsonResponse`, `BytesResponse` or `StreamResponse`. The API plane
(plane.py) builds the request straight from the ASGI scope and writes the response straight to
the ASGI `send`: no Django request or response objects on the way. Django's URLconf mounts the
same functions through `django_view` (for Django's test client and anything else that comes
through Django), so both run the same code.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from inference_app.gateway import admission, errors, jsonio
from inference_app.gateway.callers import Caller, resolve_api_caller
from inference_app.gateway.errors import GatewayError

log = logging.getLogger(__name__)

JSON = "application/json"


class ApiRequest:
    """One API request: method, path, headers (lower-case names), query string, and its body,
    read on demand (`await read_body()`): an endpoint checks who is calling before it reads
    what they sent."""

    __slots__ = (
        "method",
        "path",
        "headers",
        "query_string",
        "body",
        "request_id",
        "_query",
        "_reader",
    )

    def __init__(
        self,
        *,
        method: str,
        path: str,
        headers: dict[str, str],
        query_string: str = "",
        body: bytes | None = None,
        reader: Callable[[], Awaitable[bytes]] | None = None,
    ) -> None:
        self.method = method
        self.path = path
        self.headers = headers
        self.query_string = query_string
        self.body = body
        # Set by an endpoint once it has one, so that its errors carry it too.
        self.request_id: str | None = None
        self._query: dict[str, list[str]] | None = None
        self._reader = reader

    async def read_body(self) -> bytes:
        """The body; a 413 when it passes MAX_REQUEST_BYTES (cut off there, not read on)."""
        if self.body is None:
            self.body = await self._reader() if self._reader is not None else b""
        return self.body

    def header(self, name: str) -> str | None:
        """A header's value by its lower-case name (the last one, when sent twice)."""
        return self.headers.get(name)

    def query(self, name: str) -> str | None:
        if self._query is None:
            self._query = parse_qs(self.query_string, keep_blank_values=True)
        values = self._query.get(name)
        return values[-1] if values else None


@dataclass(slots=True)
class JsonResponse:
    payload: object
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class BytesResponse:
    body: bytes
    content_type: str
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class StreamResponse:
    """A server-sent event stream; its first event was produced before the headers go out.

    `events` is closed however the response ends (done, error, client gone)."""

    events: AsyncIterator[bytes]
    headers: dict[str, str] = field(default_factory=dict)
    status: int = 200


class ClientDisconnected(Exception):
    """The client hung up before its body was read: there is no one to answer."""


ApiResponse = JsonResponse | BytesResponse | StreamResponse
Endpoint = Callable[[ApiRequest], Awaitable[ApiResponse]]


def error_response(error: GatewayError, request_id: str | None = None) -> JsonResponse:
    headers = dict(error.headers)
    if request_id:
        headers["x-request-id"] = request_id
    return JsonResponse(error.body(), status=error.status, headers=headers)


async def respond(endpoint: Endpoint, request: ApiRequest) -> ApiResponse:
    """Run `endpoint`; every failure is answered in OpenAI's error shape, including the ones
    nobody planned for."""
    try:
        return await endpoint(request)
    except ClientDisconnected:
        raise
    except GatewayError as exc:
        return error_response(exc, request.request_id)
    except Exception:
        log.exception("unexpected error in %s", request.path)
        return error_response(errors.server_error(), request.request_id)


async def authenticate(request: ApiRequest) -> Caller:
    """The API's admission: the country block, then the key, its user's organization and team
    membership and the project (OpenAI-Project, or the user's default by the one rule)."""
    headers = request.headers
    admission.check_country(headers.get(settings.COUNTRY_HEADER.lower()))
    return await resolve_api_caller(headers.get("authorization"), headers.get("openai-project"))


# --- the same endpoints through Django's URLconf ------------------------------------------


def django_view(endpoint: Endpoint, method: str):
    """Mount an endpoint as a Django view: CSRF-exempt (keys, not cookies), one method."""

    @csrf_exempt
    @functools.wraps(endpoint)
    async def view(request: HttpRequest, **kwargs) -> HttpResponse:
        if request.method != method:
            return to_django(
                error_response(errors.method_not_allowed(request.method, request.path))
            )
        try:
            api_request = _from_django(request)
        except GatewayError as exc:
            return to_django(error_response(exc))
        return to_django(await respond(endpoint, api_request))

    return view


def _from_django(request: HttpRequest) -> ApiRequest:
    return ApiRequest(
        method=request.method or "GET",
        path=request.path,
        headers={name.lower(): value for name, value in request.headers.items()},
        query_string=request.META.get("QUERY_STRING", ""),
        body=django_body(request),
    )


def django_body(request: HttpRequest) -> bytes:
    """A Django request's body, or a 413 (Django reads it whole; the plane refuses large
    bodies before reading them)."""
    try:
        declared = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        raise errors.invalid_request("Invalid Content-Length header.") from None
    admission.check_size(declared)
    try:
        body = request.body
    except RequestDataTooBig:
        raise errors.request_too_large(settings.MAX_REQUEST_BYTES) from None
    admission.check_size(len(body))
    return body


def to_django(response: ApiResponse) -> HttpResponse:
    if isinstance(response, StreamResponse):
        return StreamingHttpResponse(
            response.events,
            status=response.status,
            content_type="text/event-stream",
            headers=response.headers,
        )
    if isinstance(response, BytesResponse):
        return HttpResponse(
            response.body,
            status=response.status,
            content_type=response.content_type,
            headers=response.headers,
        )
    return HttpResponse(
        jsonio.dumps(response.payload),
        status=response.status,
        content_type=JSON,
        headers=response.headers,
    )
