"""A fast FAKE OpenAI-compatible engine for benchmarks and tests (it generates no real text).

A plain ASGI app (no framework) that answers chat completions after a fixed delay and streams a
fixed number of tokens at a fixed rate, with a usage chunk, so the gateway's own cost can be
measured without a model in the way.

Run it:

    .venv/bin/python -m daphne -b 127.0.0.1 -p 18301 bench.fake_engine:app
    uvicorn --host 127.0.0.1 --port 18301 bench.fake_engine:app        # if uvicorn is installed

Endpoints:

    GET  /health                 {"status": "ok"}
    GET  /v1/models              the models named in FAKE_ENGINE_MODELS
    POST /v1/chat/completions    non-streaming, or SSE chat.completion.chunk lines when "stream":
                                 true; a usage chunk ("choices": []) when
                                 stream_options.include_usage; then "data: [DONE]"
    GET  /stats                  {"in_flight", "max_concurrent", "total_requests", "completed",
                                  "cancelled_streams", "streams"}
    POST /stats/reset            zero the counters (max_concurrent restarts from in_flight)

Configuration (environment, read at import):

    FAKE_ENGINE_DELAY_MS=0              delay before the first token (non-streaming: before the reply)
    FAKE_ENGINE_TOKENS=16               tokens per completion (a request's max_tokens can lower it)
    FAKE_ENGINE_TOKENS_PER_SECOND=0     token rate after the first one; 0 means as fast as possible
    FAKE_ENGINE_NO_USAGE=1              never report usage (tests the gateway's own counting)
    FAKE_ENGINE_STAMP=1                 the first content token of a stream is "@<unix time>" when
                                        the engine sent it, so a client on this machine can measure
                                        the delay from the engine's first token to its own message
    FAKE_ENGINE_MODELS=fake-model       comma-separated ids listed by /v1/models (any id is served)
    FAKE_ENGINE_MODEL_OVERRIDES='{"slow-model": {"delay_ms": 500, "tokens_per_second": 5}}'
                                        per-model settings, for a slow pane behind a gateway that
                                        does not forward the headers below

Per request: headers `x-fake-delay-ms`, `x-fake-tokens-per-second`, `x-fake-tokens` and
`x-fake-stamp` override
the configuration; `max_tokens` (or `max_completion_tokens`) caps the token count.
"""

import asyncio
import json
import os
import time
import uuid

WORDS = ("Lorem", " ipsum", " dolor", " sit", " amet", ",", " consectetur", " adipiscing")


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name, "")
    return float(value) if value.strip() else default


DELAY_MS = _env_float("FAKE_ENGINE_DELAY_MS", 0)
TOKENS = int(_env_float("FAKE_ENGINE_TOKENS", 16))
TOKENS_PER_SECOND = _env_float("FAKE_ENGINE_TOKENS_PER_SECOND", 0)
NO_USAGE = os.environ.get("FAKE_ENGINE_NO_USAGE", "") in ("1", "true", "yes")
STAMP = os.environ.get("FAKE_ENGINE_STAMP", "") in ("1", "true", "yes")
MODELS = [m.strip() for m in os.environ.get("FAKE_ENGINE_MODELS", "fake-model").split(",") if m]
MODEL_OVERRIDES = json.loads(os.environ.get("FAKE_ENGINE_MODEL_OVERRIDES", "") or "{}")


class Stats:
    """Counters the benchmark and tests read through GET /stats."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.reset()

    def reset(self) -> None:
        self.max_concurrent = self.in_flight
        self.total_requests = 0
        self.completed = 0
        self.cancelled_streams = 0
        self.streams = 0

    def enter(self) -> None:
        self.in_flight += 1
        self.total_requests += 1
        self.max_concurrent = max(self.max_concurrent, self.in_flight)

    def as_dict(self) -> dict:
        return {
            "in_flight": self.in_flight,
            "max_concurrent": self.max_concurrent,
            "total_requests": self.total_requests,
            "completed": self.completed,
            "cancelled_streams": self.cancelled_streams,
            "streams": self.streams,
        }


stats = Stats()


async def _read_body(receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionError("client went away before sending the body")
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def _send_json(send, status: int, payload: dict, extra_headers=()) -> None:
    data = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send(
        {"type": "http.response.start", "status": status, "headers": headers + list(extra_headers)}
    )
    await send({"type": "http.response.body", "body": data})


def _error(message: str, type_: str = "invalid_request_error") -> dict:
    return {"error": {"message": message, "type": type_, "param": None, "code": None}}


def _plan(body: dict, headers: dict[bytes, bytes]) -> tuple[float, int, float, bool]:
    """Delay (s), token count, rate and stamping for this request: headers > per-model > env."""
    model_conf = MODEL_OVERRIDES.get(body.get("model"), {})
    delay_ms = float(headers.get(b"x-fake-delay-ms", model_conf.get("delay_ms", DELAY_MS)))
    rate = float(
        headers.get(
            b"x-fake-tokens-per-second", model_conf.get("tokens_per_second", TOKENS_PER_SECOND)
        )
    )
    tokens = int(headers.get(b"x-fake-tokens", model_conf.get("tokens", TOKENS)))
    cap = body.get("max_completion_tokens") or body.get("max_tokens")
    if isinstance(cap, int) and cap > 0:
        tokens = min(tokens, cap)
    stamp = headers.get(b"x-fake-stamp", b"1" if model_conf.get("stamp", STAMP) else b"") == b"1"
    return delay_ms / 1000, max(tokens, 1), rate, stamp


def _prompt_tokens(body: dict) -> int:
    # A rough estimate (4 characters a token) is enough for a fake: the numbers only need to be
    # plausible and deterministic.
    chars = 0
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            chars += sum(len(p.get("text", "")) for p in content if isinstance(p, dict))
    return max(1, chars // 4) + 3


async def _wait_until(deadline: float) -> None:
    # Sleeping to an absolute schedule keeps the token rate exact under load (no drift).
    pause = deadline - time.monotonic()
    if pause > 0:
        await asyncio.sleep(pause)


async def _completion(send, body: dict, headers: dict[bytes, bytes]) -> None:
    delay, tokens, rate, _ = _plan(body, headers)
    start = time.monotonic()
    await _wait_until(start + delay)
    if rate > 0 and tokens > 1:
        await _wait_until(start + delay + (tokens - 1) / rate)
    text = "".join(WORDS[i % len(WORDS)] for i in range(tokens))
    prompt_tokens = _prompt_tokens(body)
    payload = {
        "id": "chatcmpl-fake-" + uuid.uuid4().hex,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model") or MODELS[0],
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": None,
                "finish_reason": "length" if tokens == body.get("max_tokens") else "stop",
            }
        ],
    }
    if not NO_USAGE:
        payload["usage"] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": tokens,
            "total_tokens": prompt_tokens + tokens,
        }
    await _send_json(send, 200, payload)


async def _stream(receive, send, body: dict, headers: dict[bytes, bytes]) -> bool:
    """Stream the completion; return False when the client disconnected first."""
    delay, tokens, rate, stamp = _plan(body, headers)
    start = time.monotonic()
    disconnected = asyncio.Event()

    async def watch_disconnect() -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                disconnected.set()
                return

    watcher = asyncio.ensure_future(watch_disconnect())
    try:
        # Every chunk of one request shares id/created/model: build the JSON prefix once and
        # splice the varying part in, so the fake engine costs little CPU under load.
        head = json.dumps(
            {
                "id": "chatcmpl-fake-" + uuid.uuid4().hex,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": body.get("model") or MODELS[0],
            }
        )[:-1].encode()

        def chunk(choices_json: str) -> bytes:
            return b"data: " + head + b', "choices": ' + choices_json.encode() + b"}\n\n"

        word_chunks = [
            chunk(
                json.dumps(
                    [{"index": 0, "delta": {"content": w}, "logprobs": None, "finish_reason": None}]
                )
            )
            for w in WORDS
        ]
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream; charset=utf-8"),
                    (b"cache-control", b"no-cache"),
                ],
            }
        )
        await _wait_until(start + delay)
        first = chunk(
            '[{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": null, '
            '"finish_reason": null}]'
        )
        await send({"type": "http.response.body", "body": first, "more_body": True})
        for i in range(tokens):
            if rate > 0 and i:
                await _wait_until(start + delay + i / rate)
            if disconnected.is_set():
                return False
            if stamp and not i:
                data = chunk(
                    json.dumps(
                        [
                            {
                                "index": 0,
                                "delta": {"content": f"@{time.time():.6f}"},
                                "logprobs": None,
                                "finish_reason": None,
                            }
                        ]
                    )
                )
            else:
                data = word_chunks[i % len(WORDS)]
            await send({"type": "http.response.body", "body": data, "more_body": True})
        finish = "length" if tokens == body.get("max_tokens") else "stop"
        tail = chunk(
            json.dumps([{"index": 0, "delta": {}, "logprobs": None, "finish_reason": finish}])
        )
        include_usage = (body.get("stream_options") or {}).get("include_usage")
        if include_usage and not NO_USAGE:
            prompt_tokens = _prompt_tokens(body)
            usage = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": tokens,
                "total_tokens": prompt_tokens + tokens,
            }
            tail += (
                b"data: "
                + head
                + b', "choices": [], "usage": '
                + json.dumps(usage).encode()
                + b"}\n\n"
            )
        tail += b"data: [DONE]\n\n"
        if disconnected.is_set():
            return False
        await send({"type": "http.response.body", "body": tail, "more_body": False})
        return True
    finally:
        watcher.cancel()


async def _chat(receive, send, headers: dict[bytes, bytes]) -> None:
    try:
        body = json.loads(await _read_body(receive) or b"{}")
    except ConnectionError:
        return
    except ValueError:
        await _send_json(send, 400, _error("The request body is not valid JSON."))
        return
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        await _send_json(send, 400, _error("'messages' is required."))
        return
    stats.enter()
    finished = False
    try:
        if body.get("stream"):
            stats.streams += 1
            finished = await _stream(receive, send, body, headers)
        else:
            await _completion(send, body, headers)
            finished = True
    finally:
        stats.in_flight -= 1
        if finished:
            stats.completed += 1
        elif body.get("stream"):
            # Disconnected (or cancelled by the server when the client went away).
            stats.cancelled_streams += 1


async def app(scope, receive, send):
    """The ASGI entry point."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    method, path = scope["method"], scope["path"].rstrip("/")
    if path in ("/v1/chat/completions", "/chat/completions") and method == "POST":
        await _chat(receive, send, dict(scope["headers"]))
    elif path in ("/v1/models", "/models") and method == "GET":
        created = 1_700_000_000
        data = [
            {"id": m, "object": "model", "created": created, "owned_by": "fake"} for m in MODELS
        ]
        await _send_json(send, 200, {"object": "list", "data": data})
    elif path == "/health":
        await _send_json(send, 200, {"status": "ok"})
    elif path == "/stats" and method == "GET":
        await _send_json(send, 200, stats.as_dict())
    elif path == "/stats/reset" and method == "POST":
        stats.reset()
        await _send_json(send, 200, stats.as_dict())
    else:
        await _send_json(send, 404, _error(f"No route for {method} {scope['path']}."))
