"""The API plane's body limit (issue #13, "bodies refused before they are read"), driven in
process through the product's ASGI HTTP app (gateway_world.asgi_request: route_api_apart with
api_plane(), as inference_app/asgi.py builds it).

`receive` is counted: a Content-Length over MAX_REQUEST_BYTES is answered 413 without one
call; a body without one (chunked) is read until it passes the limit and not one message more.
Whatever is refused leaves nothing taken: no usage row, no reservation, the balance unchanged,
no concurrency slot, no engine call.
"""

import json
import logging

import pytest

from tests.inference_app.gateway_world import (
    HELLO,
    TEXT_MODEL,
    asgi_request,
)

CHAT = "/v1/chat/completions"
TRACES = "/otel/v1/traces"
# A /v1 path the plane does not route itself: Django's API handler behind RequestSizeLimit.
FALLBACK = "/v1/evaluations"
LIMIT = 10_000


@pytest.fixture
async def nothing_taken(nothing_taken, fake_engine):
    """The shared check (no trace left), and no engine reached either."""
    yield
    assert fake_engine.requests == []


@pytest.fixture
def limit(settings):
    settings.MAX_REQUEST_BYTES = LIMIT
    # Django's own check off: what is tested here is the plane's.
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = None
    return LIMIT


def headers(world, path: str, **extra: str) -> dict[str, str]:
    """The key's headers and a JSON body (both endpoints take JSON; OTLP/JSON for /otel/)."""
    return {**world.headers(), "content-type": "application/json", **extra}


def assert_413(result) -> None:
    assert result.status == 413, result.body
    assert result.headers["content-type"] == "application/json"
    assert result.headers["connection"] == "close"
    error = json.loads(result.body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == "request_too_large"
    assert error["type"] == "invalid_request_error"
    assert str(LIMIT) in error["message"]


def padded_chat_body(size: int) -> bytes:
    """A valid chat completion request of exactly `size` bytes (JSON padded with spaces)."""
    body = json.dumps({"model": TEXT_MODEL, "messages": HELLO, "max_tokens": 5}).encode()
    assert len(body) <= size
    return body[:-1] + b" " * (size - len(body)) + b"}"


def split(body: bytes, parts: int) -> list[bytes]:
    step = -(-len(body) // parts)
    return [body[i : i + step] for i in range(0, len(body), step)]


# --- Content-Length over the limit: 413, the body never read ---------------------------------
@pytest.mark.parametrize("path", [CHAT, TRACES, FALLBACK])
@pytest.mark.parametrize("with_key", [True, False], ids=["key", "no-key"])
async def test_declared_length_over_the_limit_is_413_without_reading(
    world, fake_engine, nothing_taken, limit, path, with_key
):
    sent = {"content-type": "application/json", "content-length": str(LIMIT + 1)}
    if with_key:
        sent.update(world.headers())
    result = await asgi_request(
        "POST",
        path,
        headers=sent,
        body_parts=[b"x" * 100, b"x" * LIMIT],  # what a client sent before the answer
    )
    assert_413(result)
    assert result.messages_received == 0  # refused on the header alone, before auth too


async def test_a_50_mb_declaration_is_refused_as_fast(world, fake_engine, nothing_taken, limit):
    result = await asgi_request(
        "POST", CHAT, headers=headers(world, CHAT, **{"content-length": str(50 * 1024 * 1024)})
    )
    assert_413(result)
    assert result.messages_received == 0


# --- chunked (no Content-Length): cut off once it passes the limit ---------------------------
@pytest.mark.parametrize("path", [CHAT, TRACES, FALLBACK])
async def test_a_chunked_body_is_cut_off_once_it_passes_the_limit(
    world, fake_engine, nothing_taken, limit, path
):
    parts = [b"x" * 4_000, b"x" * 4_000, b"x" * 4_000, b"x" * 4_000, b"x" * 4_000]
    result = await asgi_request("POST", path, headers=headers(world, path), body_parts=parts)
    assert_413(result)
    # 12,000 bytes after the third part: it passed the limit; the fourth was never asked for.
    assert result.messages_received == 3


async def test_one_byte_past_the_limit_is_cut_off(world, fake_engine, nothing_taken, limit):
    parts = split(padded_chat_body(LIMIT + 1), 4)
    result = await asgi_request("POST", CHAT, headers=headers(world, CHAT), body_parts=parts)
    assert_413(result)
    assert result.messages_received == len(parts)


async def test_a_single_oversized_part_is_cut_off(world, fake_engine, nothing_taken, limit):
    # A server may hand over much at once (daphne: the whole body in one message).
    result = await asgi_request(
        "POST", CHAT, headers=headers(world, CHAT), body_parts=[b"x" * (LIMIT * 3), b"x"]
    )
    assert_413(result)
    assert result.messages_received == 1


async def test_a_chunked_body_is_cut_off_after_auth_only(world, fake_engine, nothing_taken, limit):
    """Without a key the caller is refused before its body is read (401, not 413)."""
    result = await asgi_request(
        "POST",
        CHAT,
        headers={"content-type": "application/json"},
        body_parts=[b"x" * (LIMIT * 2)],
    )
    assert result.status == 401
    assert json.loads(result.body)["error"]["code"] == "invalid_api_key"
    assert result.messages_received == 0


# --- invalid Content-Length: 400 ------------------------------------------------------------
@pytest.mark.parametrize("path", [CHAT, TRACES])
@pytest.mark.parametrize("value", ["abc", "", "1e3", "12 34", "-1", "+10", "1_0", "١٠"])
async def test_an_invalid_content_length_is_400(
    world, fake_engine, nothing_taken, limit, path, value
):
    result = await asgi_request(
        "POST", path, headers=headers(world, path, **{"content-length": value}), body=b"{}"
    )
    assert result.status == 400, result.body
    error = json.loads(result.body)["error"]
    assert error["code"] == "invalid_request_error"
    assert error["message"] == "Invalid Content-Length header."
    assert result.messages_received == 0


# --- at the limit: accepted -----------------------------------------------------------------
async def test_a_declared_length_at_the_limit_goes_on_to_auth(
    world, fake_engine, nothing_taken, limit
):
    result = await asgi_request(
        "POST",
        CHAT,
        headers={"content-type": "application/json", "content-length": str(LIMIT)},
        body=b"x" * LIMIT,
    )
    assert result.status == 401  # not 413: the size is fine, the missing key is not
    assert json.loads(result.body)["error"]["code"] == "invalid_api_key"


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
async def test_a_body_exactly_at_the_limit_is_served(world, fake_engine, limit, declared):
    body = padded_chat_body(LIMIT)
    assert len(body) == LIMIT
    sent = headers(world, CHAT, **({"content-length": str(LIMIT)} if declared else {}))
    result = await asgi_request("POST", CHAT, headers=sent, body_parts=split(body, 3))
    assert result.status == 200, result.body
    assert json.loads(result.body)["object"] == "chat.completion"
    assert "connection" not in result.headers  # a served request keeps its connection
    assert len(fake_engine.requests) == 1


async def test_traces_at_the_limit_are_read(world, fake_engine, limit):
    """An OTLP body at the limit is read and decoded (an empty export: nothing to store)."""
    body = b"{" + b" " * (LIMIT - 2) + b"}"
    result = await asgi_request(
        "POST", TRACES, headers=headers(world, TRACES), body_parts=split(body, 2)
    )
    assert result.status == 200, result.body


# --- a client that leaves before its body is sent -------------------------------------------
@pytest.mark.parametrize("path", [CHAT, TRACES, FALLBACK])
@pytest.mark.parametrize("first", [[], [b"{"]], ids=["at-once", "after-a-part"])
async def test_a_client_gone_before_its_body_gets_nothing_and_logs_nothing(
    world, fake_engine, nothing_taken, limit, caplog, path, first
):
    messages = [{"type": "http.request", "body": part, "more_body": True} for part in first]
    messages.append({"type": "http.disconnect"})
    with caplog.at_level(logging.WARNING):
        result = await asgi_request("POST", path, headers=headers(world, path), messages=messages)
    assert result.messages_sent == []  # no one to answer: not even a 500
    assert result.messages_received == len(messages)
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
