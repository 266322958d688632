"""A tiny OpenAI-compatible engine whose every answer is hostile Markdown/HTML (an ASGI app).

    python -m daphne -b 127.0.0.1 -p PORT tests.playground.hostile_engine:app

The browser tests point a deployment at it to check that model output renders inert.
"""

import json

ANSWER_CHUNKS = [
    "Here is **bold** text. ",
    "<img src=x onerror=\"window.__pwned='img';alert(1)\"> ",
    "<script>window.__pwned='script';alert(2)</script> ",
    "[a link](javascript:window.__pwned='link') ",
    '<a href="javascript:alert(4)" onclick="window.__pwned=\'click\'">x</a> ',
    "<svg onload=\"window.__pwned='svg'\"></svg>",
    '<iframe src="javascript:alert(5)"></iframe>\n\n',
    "```python\nprint('hello')\n```\n",
]


def _chunk(choices, usage=None) -> bytes:
    body = {
        "id": "chatcmpl-hostile",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "hostile",
        "choices": choices,
    }
    if usage is not None:
        body["usage"] = usage
    return f"data: {json.dumps(body)}\n\n".encode()


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    if scope["path"].endswith("/chat/completions"):
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        for text in ANSWER_CHUNKS:
            await send(
                {
                    "type": "http.response.body",
                    "body": _chunk(
                        [{"index": 0, "delta": {"content": text}, "finish_reason": None}]
                    ),
                    "more_body": True,
                }
            )
        usage = {
            "prompt_tokens": 5,
            "completion_tokens": len(ANSWER_CHUNKS),
            "total_tokens": 5 + len(ANSWER_CHUNKS),
        }
        tail = _chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}]) + _chunk([], usage)
        await send({"type": "http.response.body", "body": tail + b"data: [DONE]\n\n"})
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": b'{"status": "ok"}'})
