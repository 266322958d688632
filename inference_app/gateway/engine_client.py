"""The one seam between the gateway and serving engines: OpenAI-compatible HTTP over httpx.

One shared `httpx.AsyncClient` per event loop (in practice, per process: daphne runs one loop),
so connections to engines are pooled and kept alive. Tests replace the transport with
`install_transport(httpx.MockTransport(...))`; nothing else in the gateway talks HTTP.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import weakref
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import httpx
from django.conf import settings

from inference_app.gateway import errors, jsonio

if TYPE_CHECKING:  # routing imports this module (its probe)
    from inference_app.gateway.routing import DeploymentTarget

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _ClientRing] = (
    weakref.WeakKeyDictionary()
)
_transport: httpx.AsyncBaseTransport | None = None


class EngineUnavailable(Exception):
    """The deployment did not take the request: no answer (refused, timed out, cut off), or
    an answer of 429 or 5xx.

    Raised before any byte of the answer, so another deployment may be tried.
    """

    def __init__(self, message: str, *, status: int | None, engine_message: str = "") -> None:
        super().__init__(message)
        self.status = status  # None: the engine gave no answer at all
        self.engine_message = engine_message

    @property
    def answered(self) -> bool:
        return self.status is not None

    @property
    def overloaded(self) -> bool:
        """No answer, 429 or 503: the caller gets 503 engine_overloaded; any other 5xx is a
        500 server_error with the engine's message."""
        return self.status in (None, 429, 503)


def install_transport(transport: httpx.AsyncBaseTransport | None) -> None:
    """Route every engine call through `transport` (tests); None restores real HTTP."""
    global _transport
    _transport = transport
    _clients.clear()


# Engine connections are spread over this many clients (pools), taken in turn. httpcore walks
# every connection of its pool on each request (is it idle? expired? readable?), so one pool's
# cost per request grows with the connections it holds: at c=64 the walk was most of what a
# bare relay spent (docs/benchmarks.md). Eight pools of a few connections each keep the walk
# short; the keep-alive connections add up to what one pool kept.
CLIENT_SHARDS = 8


def get_client() -> httpx.AsyncClient:
    loop = asyncio.get_running_loop()
    ring = _clients.get(loop)
    if ring is None:
        ring = _clients[loop] = _ClientRing()
    return ring.next()


class _ClientRing:
    def __init__(self) -> None:
        self.clients: list[httpx.AsyncClient] = []
        self.turn = 0

    def next(self) -> httpx.AsyncClient:
        self.turn = (self.turn + 1) % CLIENT_SHARDS
        if self.turn < len(self.clients):
            client = self.clients[self.turn]
            if not client.is_closed:
                return client
            self.clients[self.turn] = client = _new_client()
            return client
        client = _new_client()
        self.clients.append(client)
        self.turn = len(self.clients) - 1
        return client


_ssl_context: ssl.SSLContext | None = None


def _new_client() -> httpx.AsyncClient:
    global _ssl_context
    if _ssl_context is None:
        # One for all clients: each httpx client would otherwise load the CA bundle itself
        # (about 56 ms here, paid by the first request on each client of the ring).
        _ssl_context = httpx.create_ssl_context()
    return httpx.AsyncClient(
        verify=_ssl_context,
        transport=_transport,
        timeout=httpx.Timeout(
            connect=settings.ENGINE_CONNECT_TIMEOUT,
            read=settings.ENGINE_READ_TIMEOUT,
            write=30.0,
            pool=settings.ENGINE_CONNECT_TIMEOUT,
        ),
        # Each pool may open as many as one did (the ring fills unevenly as streams end).
        limits=httpx.Limits(max_connections=1000, max_keepalive_connections=200 // CLIENT_SHARDS),
    )


def _headers(target: DeploymentTarget) -> dict[str, str]:
    headers = {"content-type": "application/json", "accept": "application/json"}
    if target.api_key:
        headers["authorization"] = f"Bearer {target.api_key}"
    return headers


async def open_chat_completion(target: DeploymentTarget, payload: dict) -> httpx.Response:
    """Send the request and return the response once its headers say 200 (body unread).

    The caller must `await response.aclose()`; closing early cancels the engine's work.
    """
    client = get_client()
    request = client.build_request(
        "POST",
        f"{target.base_url}/chat/completions",
        content=jsonio.dumps(payload),
        headers=_headers(target),
    )
    try:
        response = await client.send(request, stream=True)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        raise EngineUnavailable(f"connect: {exc!r}", status=None) from exc
    except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
        raise EngineUnavailable(f"no answer: {exc!r}", status=None) from exc
    if response.status_code == 200:
        return response
    try:
        raw = await response.aread()
    except httpx.HTTPError:
        raw = b""
    finally:
        await response.aclose()
    status = response.status_code
    engine_message = _engine_error_message(raw)
    message = engine_message or f"engine answered HTTP {status}"
    if status == 429 or status >= 500:
        raise EngineUnavailable(
            f"HTTP {status}: {message}", status=status, engine_message=engine_message
        )
    # The engine rejected the request itself (context too long, bad parameter): the caller's fault.
    raise errors.invalid_request(message)


def _engine_error_message(raw: bytes) -> str:
    try:
        body = json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")[:500].strip()
    return error_message_of(body)


def error_message_of(body: object) -> str:
    """The message of an engine's error body, in any of the shapes engines use."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        message = str(error.get("message") or "")
    elif isinstance(error, str):
        message = error
    elif isinstance(body, dict) and isinstance(body.get("message"), str):
        message = body["message"]
    else:
        return ""
    # Passed on to the caller: it must encode as UTF-8 whatever the engine quoted (a lone
    # surrogate "\ud800" is valid JSON but no Unicode).
    return message[:2000].encode("utf-8", "replace").decode("utf-8")


async def iter_event_batches(response: httpx.Response) -> AsyncIterator[list[dict]]:
    """The JSON payloads of an SSE stream's `data:` lines, until `data: [DONE]`, in batches:
    one list per network read, so a fast engine's burst costs one write downstream, not one
    per token."""
    pending = b""
    loads = jsonio.loads
    async for data in response.aiter_bytes():
        pending += data
        *lines, pending = pending.split(b"\n")
        batch = []
        for line in lines:
            if not line.startswith(b"data:"):
                continue  # blank separators, comments (": ping"), event names
            payload = line[5:].strip()
            if payload == b"[DONE]":
                if batch:
                    yield batch
                return
            if payload:
                batch.append(loads(payload))
        if batch:
            yield batch


async def read_json(response: httpx.Response) -> dict:
    return jsonio.loads(await response.aread())


async def probe(base_url: str, api_key: str, timeout: float) -> tuple[bool, str]:
    """Is the engine answering `GET {base_url}/models`? (ok, detail)."""
    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = await get_client().get(
            f"{base_url.rstrip('/')}/models", headers=headers, timeout=timeout
        )
    except httpx.HTTPError as exc:
        return False, type(exc).__name__
    if response.status_code != 200:
        return False, f"HTTP {response.status_code}"
    return True, "ok"
