"""A client that drops a stream mid-way: its slot comes back, the engine request stops, and one
usage row records what was generated (DESIGN.md lessons 2 and 4).

Here the engine is bench's fake engine, which counts the streams it saw cancelled; the same
test through the real engine is in test_embedded_engine.py.
"""

import time

import httpx

from tests.support.clients import (
    api_headers,
    create_once_a_slot_is_free,
    openai_client,
    stream_then_hang_up,
)
from tests.support.engines import fake_engine_stats
from tests.support.world import DROP_PROJECT, FAST_MODEL, SLOW_MODEL

HELLO = [{"role": "user", "content": "Tell me a long story."}]
MAX_TOKENS = 200  # at 20 tokens/s the stream would last 10 s; the client leaves after 5 tokens
CHUNKS_TO_READ = 5


def wait_for(predicate, timeout: float = 5.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def test_dropped_stream_frees_its_slot_stops_the_engine_and_leaves_one_usage_row(
    sqlite_stack, fake_engine
):
    stack = sqlite_stack
    key = stack.api_keys["alice"]
    before = stack.usage_rows()
    engine_before = fake_engine_stats(fake_engine)

    body = {"model": SLOW_MODEL, "messages": HELLO, "max_tokens": MAX_TOKENS}
    read = stream_then_hang_up(stack.url, key, DROP_PROJECT, body, chunks=CHUNKS_TO_READ)
    assert read == CHUNKS_TO_READ

    # The engine's stream is cancelled (not run to its end)...
    cancelled_before = engine_before["cancelled_streams"]
    assert wait_for(
        lambda: fake_engine_stats(fake_engine)["cancelled_streams"] > cancelled_before
    ), f"the engine stream was never cancelled: {fake_engine_stats(fake_engine)}"
    stats = fake_engine_stats(fake_engine)
    assert stats["cancelled_streams"] == cancelled_before + 1
    assert stats["completed"] == engine_before["completed"]
    assert stats["in_flight"] == 0

    # ...the project's only slot is free again (acme/drop allows one request at a time)...
    client = openai_client(stack.url, key, DROP_PROJECT, max_retries=0)
    assert create_once_a_slot_is_free(client, model=FAST_MODEL, messages=HELLO, max_tokens=4)

    # ...and exactly one usage row records the dropped request, with what was generated.
    rows = stack.usage_rows_since(before, expect=2)
    dropped = [row for row in rows if row["model"] == SLOW_MODEL]
    assert len(dropped) == 1, rows
    [row] = dropped
    assert row["status"] == "cancelled"
    assert (row["team"], row["project"]) == ("acme", "drop")
    # The engine sends no usage for a stream it never finished: the gateway counted the tokens.
    assert row["tokens_counted_by_gateway"]
    assert CHUNKS_TO_READ <= row["completion_tokens"] < MAX_TOKENS, row
    assert row["prompt_tokens"] > 0


def test_dropped_non_streaming_request_frees_its_slot(sqlite_stack, fake_engine):
    """A client that gives up on a plain (non-streaming) request before the answer."""
    stack = sqlite_stack
    key = stack.api_keys["alice"]
    before = stack.usage_rows()
    body = {"model": SLOW_MODEL, "messages": HELLO, "max_tokens": 100}  # 5 s to answer
    try:
        httpx.post(
            f"{stack.url}/v1/chat/completions",
            json=body,
            headers=api_headers(key, DROP_PROJECT),
            timeout=httpx.Timeout(30, read=0.5),
        )
        raise AssertionError("the slow request answered within 0.5 s")
    except httpx.ReadTimeout:
        pass  # the client hangs up

    client = openai_client(stack.url, key, DROP_PROJECT, max_retries=0)
    assert create_once_a_slot_is_free(client, model=FAST_MODEL, messages=HELLO, max_tokens=4)
    rows = stack.usage_rows_since(before, expect=2)
    dropped = [row for row in rows if row["model"] == SLOW_MODEL]
    assert len(dropped) == 1 and dropped[0]["status"] == "cancelled", rows
