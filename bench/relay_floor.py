"""The floor of our stack: a bare relay, for bench.run and bench.floor to measure (not a gateway).

A plain ASGI app (run under daphne, uvicorn or granian) that forwards POST /v1/chat/completions
to the engine with httpx, over the same ring of CLIENT_SHARDS clients as the gateway's engine
client (inference_app/gateway/engine_client.py: one pool's cost per request grows with its
connections), and passes the answer back, streamed or not (a
stream stops when its client leaves): no Django, no auth, no limits, no billing. Whatever
latency it adds is what the server + httpx cost before any gateway work; our gateway's added
latency is measured against it, under the same server, in the same run.

    RELAY_ENGINE_URL=http://127.0.0.1:PORT/v1 daphne bench.relay_floor:app
    RELAY_ENGINE_URL=... uvicorn bench.relay_floor:app --loop uvloop --http httptools
    RELAY_ENGINE_URL=... granian --interface asgi --loop uvloop bench.relay_floor:app
"""

import asyncio
import os

import httpx

ENGINE_URL = os.environ.get("RELAY_ENGINE_URL", "http://127.0.0.1:8001/v1")
CLIENT_SHARDS = 8  # as inference_app/gateway/engine_client.py (no Django here to import it)
_clients: list[httpx.AsyncClient] = []
_turn = 0


def _next_client() -> httpx.AsyncClient:
    global _turn
    if not _clients:
        # Keep every connection alive (httpx keeps 20 by default): at c=64 the default would
        # open a new engine connection for most requests.
        limits = httpx.Limits(max_connections=1000, max_keepalive_connections=1000)
        tls = httpx.create_ssl_context()  # one CA bundle load for the ring, as the gateway
        _clients.extend(
            httpx.AsyncClient(timeout=60, limits=limits, verify=tls) for _ in range(CLIENT_SHARDS)
        )
    _turn = (_turn + 1) % CLIENT_SHARDS
    return _clients[_turn]


async def _read_body(receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def app(scope, receive, send):
    if scope["type"] == "lifespan":  # uvicorn and granian ask; nothing to set up
        while True:
            message = await receive()
            kind = message["type"].rsplit(".", 1)[-1]
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    if scope["type"] != "http":
        return
    if scope["path"] == "/health":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    client = _next_client()
    body = await _read_body(receive)
    request = client.build_request(
        "POST",
        f"{ENGINE_URL}/chat/completions",
        content=body,
        headers={"content-type": "application/json"},
    )
    response = await client.send(request, stream=True)
    try:
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            # A stream ends when its client leaves, as in the gateway: watch for the disconnect
            # and stop reading from the engine (closing the upstream connection cancels it).
            pump = asyncio.ensure_future(_pump(response, send))
            watcher = asyncio.ensure_future(_wait_disconnect(receive))
            await asyncio.wait((pump, watcher), return_when=asyncio.FIRST_COMPLETED)
            watcher.cancel()
            if not pump.done():
                pump.cancel()
            await asyncio.wait((pump,))
        else:
            await _pump(response, send)
    finally:
        await response.aclose()


async def _wait_disconnect(receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _pump(response: httpx.Response, send) -> None:
    headers = [(b"content-type", response.headers["content-type"].encode())]
    await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
    first = True
    async for data in response.aiter_raw():
        await send({"type": "http.response.body", "body": data, "more_body": True})
        if first:  # as the gateway does: let the server write the first bytes at once
            first = False
            await asyncio.sleep(0)
    await send({"type": "http.response.body", "body": b""})
