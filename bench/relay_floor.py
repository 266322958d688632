"""The floor of our stack: a bare relay, for bench.floor to measure (not a gateway).

A plain ASGI app under daphne that forwards POST /v1/chat/completions to the engine with one
shared httpx.AsyncClient and passes the answer back, streamed or not: no Django, no auth, no
limits, no billing. Whatever latency it adds is what daphne + httpx cost before any gateway
work; our gateway's added latency is measured against it in the same run.

    RELAY_ENGINE_URL=http://127.0.0.1:PORT/v1 daphne bench.relay_floor:app
"""

import asyncio
import os

import httpx

ENGINE_URL = os.environ.get("RELAY_ENGINE_URL", "http://127.0.0.1:8001/v1")
_client: httpx.AsyncClient | None = None


async def _read_body(receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def app(scope, receive, send):
    global _client
    if scope["type"] != "http":
        return
    if scope["path"] == "/health":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    if _client is None:
        _client = httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=1000))
    body = await _read_body(receive)
    request = _client.build_request(
        "POST",
        f"{ENGINE_URL}/chat/completions",
        content=body,
        headers={"content-type": "application/json"},
    )
    response = await _client.send(request, stream=True)
    try:
        headers = [(b"content-type", response.headers["content-type"].encode())]
        await send(
            {"type": "http.response.start", "status": response.status_code, "headers": headers}
        )
        first = True
        async for data in response.aiter_raw():
            await send({"type": "http.response.body", "body": data, "more_body": True})
            if first:  # as the gateway does: let daphne write the first bytes at once
                first = False
                await asyncio.sleep(0)
        await send({"type": "http.response.body", "body": b""})
    finally:
        await response.aclose()
