"""Oversized bodies against a live server, over a raw socket (issue #13: "bodies refused before
they are read"), under each server the API runs under (sqlite_stack: MAX_REQUEST_BYTES = 1 MB).

The client here does what an HTTP library would not: it declares 50 MB and sends only a little,
or streams a chunked body without end, and watches when the answer comes.

- uvicorn and granian hand the body to the application as it arrives: the API plane answers
  413 on the Content-Length alone, or as soon as a chunked body passes the limit, and the
  connection closes; the client never has to send the rest.
- daphne calls the application only once the whole body is in; for /v1/ and /otel/ our request
  class (inference_app/daphne_requests.py) refuses the body itself as it arrives, with the same
  413, so the same expectations hold there too.
"""

import json
import select
import socket
import time
from urllib.parse import urlsplit

import pytest

from tests.support.clients import api_headers
from tests.support.world import FAST_MODEL, MAIN_PROJECT

LIMIT = 1_000_000  # the stack's MAX_REQUEST_BYTES
DECLARED = 50 * 1024 * 1024
PIECE = 64 * 1024
PROMPT = 3.0  # seconds: "promptly" (the answer takes milliseconds; this is the slack)


@pytest.fixture
def stack(sqlite_stack):
    return sqlite_stack


def connect(stack) -> socket.socket:
    url = urlsplit(stack.url)
    sock = socket.create_connection((url.hostname, url.port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def request_head(stack, path: str, headers: dict[str, str]) -> bytes:
    host = urlsplit(stack.url).netloc
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def key_headers(stack) -> dict[str, str]:
    return api_headers(stack.api_keys["alice"], MAIN_PROJECT)


def answered(sock: socket.socket, wait: float = 0.0) -> bool:
    """Has the server sent something (or closed)?"""
    readable, _, _ = select.select([sock], [], [], wait)
    return bool(readable)


def read_response(sock: socket.socket, timeout: float) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response with a Content-Length body: status, headers, body."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split()[1])
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed mid-body"
        body += chunk
    return status, headers, body[:length]


def closes(sock: socket.socket, timeout: float) -> bool:
    """Does the server close the connection (EOF or reset) within `timeout`?"""
    sock.settimeout(timeout)
    try:
        while True:
            if not sock.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def assert_413(status: int, body: bytes) -> None:
    assert status == 413, body[:500]
    error = json.loads(body)["error"]
    assert error["code"] == "request_too_large"
    assert set(error) == {"message", "type", "param", "code"}


# --- Content-Length 50 MB, a little of it sent ------------------------------------------------
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/otel/v1/traces"])
def test_a_declared_50_mb_body_is_refused_before_it_is_sent(stack, path):
    before = stack.usage_rows()
    sock = connect(stack)
    try:
        head = request_head(stack, path, {**key_headers(stack), "Content-Length": str(DECLARED)})
        started = time.monotonic()
        sock.sendall(head + b"x" * PIECE)
        status, headers, body = read_response(sock, timeout=PROMPT)
        took = time.monotonic() - started
        assert_413(status, body)
        assert took < PROMPT
        assert headers.get("connection") == "close"
        assert closes(sock, PROMPT)  # and the client need not send the other 49.9 MB
    finally:
        sock.close()
    assert stack.usage_rows_since(before) == []


# --- chunked, without end ------------------------------------------------------------------
def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/otel/v1/traces"])
def test_a_chunked_body_past_the_limit_is_cut_off_and_the_connection_closed(stack, path):
    before = stack.usage_rows()
    sock = connect(stack)
    piece = chunk(b"x" * PIECE)
    sent = 0
    try:
        sock.sendall(
            request_head(stack, path, {**key_headers(stack), "Transfer-Encoding": "chunked"})
        )
        # Keep sending, far past the limit, until the server answers (or stops reading).
        deadline = time.monotonic() + PROMPT
        sock.settimeout(PROMPT)
        try:
            while sent < 64 * LIMIT and time.monotonic() < deadline:
                if answered(sock):
                    break
                sock.sendall(piece)
                sent += PIECE
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass  # the server stopped reading: it has cut the body off
        assert sent > LIMIT
        status, headers, body = read_response(sock, timeout=PROMPT)
        assert_413(status, body)
        assert headers.get("connection") == "close"
        assert closes(sock, PROMPT)
    finally:
        sock.close()
    assert stack.usage_rows_since(before) == []


def test_a_body_under_the_limit_is_served_over_the_same_raw_socket(stack):
    """The raw client itself is sound: a small body, sent the same way, is answered 200."""
    hello = [{"role": "user", "content": "Say hello."}]
    body = json.dumps({"model": FAST_MODEL, "messages": hello, "max_tokens": 2}).encode()
    sock = connect(stack)
    try:
        head = request_head(
            stack, "/v1/chat/completions", {**key_headers(stack), "Content-Length": str(len(body))}
        )
        sock.sendall(head + body)
        status, headers, _ = read_response(sock, timeout=10)
    finally:
        sock.close()
    assert status == 200
    assert headers.get("connection") != "close"
