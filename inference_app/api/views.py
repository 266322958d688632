"""The OpenAI-compatible API (/v1): thin async views over inference_app.gateway."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import AsyncIterator

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from inference_app.gateway import admission, errors
from inference_app.gateway.callers import Caller, resolve_api_caller
from inference_app.gateway.errors import GatewayError
from inference_app.gateway.model_list import get_model, list_models
from inference_app.gateway.pipeline import ChatCall, new_request_id, start_chat_completion
from inference_app.gateway.requests import parse_json_body
from traces.w3c import traceparent_format, traceparent_parse

log = logging.getLogger(__name__)

_JSON = "application/json"


def json_response(payload: dict, status: int = 200, headers: dict | None = None) -> HttpResponse:
    return HttpResponse(
        json.dumps(payload, separators=(",", ":"), ensure_ascii=False),
        status=status,
        content_type=_JSON,
        headers=headers,
    )


def error_response(error: GatewayError, request_id: str | None = None) -> HttpResponse:
    headers = dict(error.headers)
    if request_id:
        headers["x-request-id"] = request_id
    return json_response(error.body(), status=error.status, headers=headers)


async def authenticate_request(request: HttpRequest) -> Caller:
    """The API's admission: the country block, then the key, its user's organization and team
    membership and the project (OpenAI-Project, or the user's default by the one rule)."""
    admission.check_country(request.headers.get(settings.COUNTRY_HEADER))
    return await resolve_api_caller(
        request.headers.get("Authorization"), request.headers.get("OpenAI-Project")
    )


def _read_body(request: HttpRequest) -> bytes:
    # Oversized bodies are refused before they are read (gateway.body_limit); this covers
    # callers of the Django app that do not come through that ASGI edge (the test Client).
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


def api_view(method: str):
    """An /v1 endpoint: CSRF-exempt (keys, not cookies), one method, and every failure answered
    in OpenAI's error shape, including the ones nobody planned for."""

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


@api_view("GET")
async def models(request: HttpRequest) -> HttpResponse:
    await authenticate_request(request)
    return json_response({"object": "list", "data": await list_models()})


@api_view("GET")
async def model_detail(request: HttpRequest, model_id: str) -> HttpResponse:
    await authenticate_request(request)
    model = await get_model(model_id)
    if model is None:
        raise errors.model_not_found(model_id)
    return json_response(model)


@api_view("POST")
async def chat_completions(request: HttpRequest) -> HttpResponse:
    request.gateway_request_id = request_id = new_request_id()
    caller = await authenticate_request(request)
    body = parse_json_body(_read_body(request))
    # A client's W3C traceparent makes the call a child of its span (an invalid one is ignored,
    # as the spec says: the call starts a trace of its own).
    trace = traceparent_parse(request.headers.get("traceparent"))
    call = await start_chat_completion(caller, body, request_id=request_id, trace=trace)
    if call.stream:
        return await _stream_response(call)
    completion = await call.result()
    return json_response(completion, headers=_call_headers(call))


def _call_headers(call: ChatCall) -> dict:
    """The request id, and the call's own span for the client's trace."""
    return {
        "x-request-id": call.request_id,
        "traceparent": traceparent_format(trace_id=call.trace_id, span_id=call.span_id),
    }


async def _stream_response(call: ChatCall) -> StreamingHttpResponse:
    events = _sse_events(call)
    # Wait for the first event before sending headers: if the client leaves meanwhile this
    # view is cancelled here and the call is closed; afterwards the generator has started,
    # so its own clean-up runs however the response ends.
    try:
        first = await anext(events)
    except StopAsyncIteration:
        first = None
    except asyncio.CancelledError:
        await events.aclose()
        await call.aclose()
        raise
    response = StreamingHttpResponse(
        _prepend(first, events),
        content_type="text/event-stream",
        headers={
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
            **_call_headers(call),
        },
    )
    return response


async def _sse_events(call: ChatCall) -> AsyncIterator[bytes]:
    try:
        failed = False
        token_written = False
        async for batch in call.chunk_batches():
            failed = "error" in batch[-1]
            yield b"".join(
                b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"
                for chunk in batch
            )
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


@csrf_exempt
async def not_found(request: HttpRequest, path: str = "") -> HttpResponse:
    return error_response(errors.not_found(request.path))
