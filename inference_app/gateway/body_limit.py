"""Refusing oversized API bodies before Django reads them.

The API plane (inference_app/api/plane.py) refuses its own endpoints' oversized bodies; this
wrapper guards what it hands to Django's API handler (the evaluations API, unknown paths).
Django reads a whole request body (spooling it to disk past 2.5 MB) before any view runs, so
the view's own size check would come after a multi-gigabyte upload had been received. This
wrapper answers 413 in the API's error shape as soon as Content-Length says too much, and cuts
off bodies without one (chunked) once they pass MAX_REQUEST_BYTES. Only /v1/ and the OTLP
endpoint (/otel/) are guarded; the view still checks too (for callers of the Django app that do
not come through here).
"""

from __future__ import annotations

import json

from django.conf import settings

from inference_app.gateway import admission, errors

# Paths answered by API keys, in the API's error shape (the OTLP endpoint is one).
API_PREFIXES = ("/v1/", "/otel/")


class RequestSizeLimit:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(API_PREFIXES):
            await self.app(scope, receive, send)
            return
        limit = settings.MAX_REQUEST_BYTES
        declared = _content_length(scope)
        if declared is not None and admission.too_large(declared):
            await _refuse(send, limit)
            return
        received = 0
        cut_off = False

        async def limited_receive():
            nonlocal received, cut_off
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if admission.too_large(received):
                    # Django stops reading at a disconnect and sends nothing; we answer.
                    cut_off = True
                    return {"type": "http.disconnect"}
            return message

        await self.app(scope, limited_receive, send)
        if cut_off:
            await _refuse(send, limit)


def _content_length(scope) -> int | None:
    value = admission.scope_header(scope, "content-length")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None  # Django answers malformed headers itself


async def _refuse(send, limit: int) -> None:
    body = json.dumps(errors.request_too_large(limit).body()).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
