"""bench's fake engine, made picky: a chat completion that carries a `grammar` gets 500, as
llama.cpp answers a grammar it cannot parse; everything else is served as the fake serves it.

    .venv/bin/python -m daphne -b 127.0.0.1 -p PORT tests.support.picky_engine:app

The engine error one tenant can cause at will: the gateway must answer it to that request
alone, never take the model away from everyone else.
"""

import json
from pathlib import Path

from bench import fake_engine

GRAMMAR_ERROR = {
    "error": {"code": 500, "message": "failed to parse grammar", "type": "server_error"}
}


async def app(scope, receive, send):
    if scope["type"] != "http" or not scope["path"].endswith("/chat/completions"):
        await fake_engine.app(scope, receive, send)
        return
    parts = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        parts.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    raw = b"".join(parts)
    try:
        payload = json.loads(raw)
    except ValueError:
        payload = None
    if isinstance(payload, dict) and "grammar" in payload:
        await send(
            {
                "type": "http.response.start",
                "status": 500,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": json.dumps(GRAMMAR_ERROR).encode()})
        return
    replayed = False

    async def replay():
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": raw, "more_body": False}

    await fake_engine.app(scope, replay, send)


def start_picky_engine(*, var_dir: Path):
    """This app under daphne on a free port, once it answers GET /health."""
    import os

    from tests.support.engines import _start_engine
    from tests.support.processes import daphne_argv

    return _start_engine(
        "picky-engine",
        lambda port: daphne_argv("tests.support.picky_engine:app", port),
        var_dir=var_dir,
        env={**os.environ},
    )
