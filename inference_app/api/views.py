"""The OpenAI-compatible API's own endpoints (/v1/models, /v1/chat/completions): thin async
functions over inference_app.gateway, run by the API plane (plane.py) and mounted in Django's
URLconf through exchange.django_view.

The Django-view helpers at the end (`api_view`, `json_response`, `authenticate_request`,
`_read_body`) serve the /v1 endpoints that stay Django views (the evaluations API).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from inference_app.api.exchange import (
    ApiRequest,
    JsonResponse,
    StreamResponse,
    authenticate,
    django_body,
    to_django,
)
from inference_app.api.exchange import error_response as api_error_response
from inference_app.gateway import admission, errors, jsonio
from inference_app.gateway.callers import Caller, resolve_api_caller
from inference_app.gateway.errors import GatewayError
from inference_app.gateway.model_list import get_model, list_models
from inference_app.gateway.pipeline import ChatCall, new_request_id, start_chat_completion
from inference_app.gateway.requests import parse_json_body
from traces.w3c import traceparent_format, traceparent_parse

log = logging.getLogger(__name__)

MODELS_PREFIX = "/v1/models/"


async def models(request: ApiRequest) -> JsonResponse:
    await authenticate(request)
    return JsonResponse({"object": "list", "data": await list_models()})


async def model_detail(request: ApiRequest) -> JsonResponse:
    await authenticate(request)
    model_id = request.path.removeprefix(MODELS_PREFIX)
    model = await get_model(model_id)
    if model is None:
        raise errors.model_not_found(model_id)
    return JsonResponse(model)


async def chat_completions(request: ApiRequest) -> JsonResponse | StreamResponse:
    request.request_id = request_id = new_request_id()
    caller = await authenticate(request)
    body = parse_json_body(await request.read_body())
    # A client's W3C traceparent makes the call a child of its span (an invalid one is ignored,
    # as the spec says: the call starts a trace of its own).
    trace = traceparent_parse(request.header("traceparent"))
    call = await start_chat_completion(caller, body, request_id=request_id, trace=trace)
    if call.stream:
        return await _stream_response(call)
    completion = await call.result()
    return JsonResponse(completion, headers=_call_headers(call))


def _call_headers(call: ChatCall) -> dict:
    """The request id, and the call's own span for the client's trace."""
    return {
        "x-request-id": call.request_id,
        "traceparent": traceparent_format(trace_id=call.trace_id, span_id=call.span_id),
    }


async def _stream_response(call: ChatCall) -> StreamResponse:
    events = _sse_events(call)
    # Wait for the first event before sending headers: if the client leaves meanwhile this
    # endpoint is cancelled here and the call is closed; afterwards the generator has started,
    # so its own clean-up runs however the response ends.
    try:
        first = await anext(events)
    except StopAsyncIteration:
        first = None
    except asyncio.CancelledError:
        await events.aclose()
        await call.aclose()
        raise
    return StreamResponse(
        _prepend(first, events),
        headers={
            "cache-control": "no-cache",
            "x-accel-buffering": "no",
            **_call_headers(call),
        },
    )


async def _sse_events(call: ChatCall) -> AsyncIterator[bytes]:
    try:
        failed = False
        token_written = False
        dumps = jsonio.dumps
        async for batch in call.chunk_batches():
            failed = "error" in batch[-1]
            yield b"".join(b"data: " + dumps(chunk) + b"\n\n" for chunk in batch)
            if not token_written:
                # Let the server write what came before the first token, and the first token,
                # now. When the engine's bytes are already buffered the stream is read without
                # ever suspending, and daphne (Twisted) writes to the socket only from the event
                # loop: the first token of a burst would reach the client with the last one.
                await asyncio.sleep(0)
                token_written = call.time_to_first_token_ms is not None
        if not failed:  # a stream that broke off ends with its error event, not [DONE]
            yield b"data: [DONE]\n\n"
    finally:
        await call.aclose()


async def _prepend(first: bytes | None, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    try:
        if first is not None:
            yield first
        async for event in rest:
            yield event
    finally:
        await rest.aclose()


# --- helpers for the /v1 endpoints that are Django views (the evaluations API) -----------


def json_response(payload: dict, status: int = 200, headers: dict | None = None) -> HttpResponse:
    return to_django(JsonResponse(payload, status=status, headers=headers or {}))


def error_response(error: GatewayError, request_id: str | None = None) -> HttpResponse:
    return to_django(api_error_response(error, request_id))


async def authenticate_request(request: HttpRequest) -> Caller:
    """`authenticate` for a Django request."""
    admission.check_country(request.headers.get(settings.COUNTRY_HEADER))
    return await resolve_api_caller(
        request.headers.get("Authorization"), request.headers.get("OpenAI-Project")
    )


# The size-checked body of a Django request (the evaluations API reads its bodies so).
_read_body = django_body


def api_view(method: str):
    """A /v1 Django view: CSRF-exempt (keys, not cookies), one method, and every failure
    answered in OpenAI's error shape, including the ones nobody planned for."""

    def decorate(view):
        @csrf_exempt
        @functools.wraps(view)
        async def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if request.method != method:
                return error_response(errors.method_not_allowed(request.method, request.path))
            try:
                return await view(request, *args, **kwargs)
            except GatewayError as exc:
                return error_response(exc, getattr(request, "gateway_request_id", None))
            except Exception:
                log.exception("unexpected error in %s", request.path)
                return error_response(
                    errors.server_error(), getattr(request, "gateway_request_id", None)
                )

        return wrapper

    return decorate


@csrf_exempt
async def not_found(request: HttpRequest, path: str = "") -> HttpResponse:
    return error_response(errors.not_found(request.path))
