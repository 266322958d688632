"""An OpenAI-compatible engine that fails on purpose, by requested model name.

    python -m tests.support.broken_engine PORT

    fail-500         answers 500 with an error body
    fail-503         answers 503 (an overloaded engine)
    error-midstream  streams 3 tokens, then a `data: {"error": ...}` event (as vLLM does)
    die-midstream    streams 3 tokens, then closes the connection mid-body (a crashed engine)

A bare asyncio HTTP/1.1 server rather than an ASGI app: an ASGI server keeps the connection
open when the application fails mid-response, and a crash must look like a cut connection.
"""

import asyncio
import json
import sys

TOKENS_BEFORE_FAILING = 3


def _event(payload: dict) -> bytes:
    data = b"data: " + json.dumps(payload).encode() + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(data), data)  # one HTTP chunk


def _token(model: str, text: str) -> bytes:
    return _event(
        {
            "id": "chatcmpl-broken",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": model,
            "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
        }
    )


def json_response(status: int, reason: str, payload: dict) -> bytes:
    body = json.dumps(payload).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in header_lines if line)
        }
        body = await reader.readexactly(int(headers.get("content-length", 0)))
        if request_line.split()[1] == "/health":
            writer.write(json_response(200, "OK", {"status": "ok"}))
            return
        payload = json.loads(body or b"{}")
        model = payload.get("model", "")
        error = {"error": {"message": f"{model} failed", "type": "server_error", "code": None}}
        if model == "fail-503":
            writer.write(json_response(503, "Service Unavailable", error))
        elif model in ("error-midstream", "die-midstream") and payload.get("stream"):
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            )
            for i in range(TOKENS_BEFORE_FAILING):
                writer.write(_token(model, f" t{i}"))
                await writer.drain()
            if model == "error-midstream":
                fault = {"message": "CUDA out of memory", "type": "server_error", "code": None}
                writer.write(_event({"error": fault}) + b"0\r\n\r\n")
            # die-midstream: close without the final chunk, as a crashed engine would.
        else:
            writer.write(json_response(500, "Internal Server Error", error))
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        try:
            await writer.drain()
        except ConnectionError:
            pass
        writer.close()


async def main(port: int) -> None:
    server = await asyncio.start_server(_handle, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
