"""The happy path through the openai client against a live daphne and bench's fake engine.

The fake engine reports exact usage (16 completion tokens unless max_tokens is lower), so the
numbers that come back, and the usage rows, can be compared exactly. The same paths through the
real engine are in test_embedded_engine.py.
"""

import httpx
import pytest

from tests.support.clients import api_headers, async_openai_client, openai_client
from tests.support.engines import start_fake_engine
from tests.support.world import (
    DOWN_MODEL,
    FAST_MODEL,
    MAIN_PROJECT,
    SLOW_MODEL,
    UNDEPLOYED_MODEL,
    VISION_MODEL,
)

HELLO = [{"role": "user", "content": "Say hello."}]
FAKE_TOKENS = 16  # what the fake engine produces by default


@pytest.fixture
def stack(sqlite_stack):
    return sqlite_stack


def test_models_lists_deployed_models_in_openai_shape(stack):
    client = openai_client(stack.url, stack.api_keys["alice"], MAIN_PROJECT)
    ids = {model.id for model in client.models.list()}
    assert {FAST_MODEL, SLOW_MODEL, VISION_MODEL, DOWN_MODEL} <= ids
    assert UNDEPLOYED_MODEL not in ids
    raw = httpx.get(f"{stack.url}/v1/models", headers=api_headers(stack.api_keys["alice"])).json()
    assert raw["object"] == "list"
    for entry in raw["data"]:
        assert entry["object"] == "model"
        assert isinstance(entry["created"], int) and entry["owned_by"]


def test_non_streaming_returns_the_engines_completion_and_one_usage_row(stack):
    before = stack.usage_rows()
    client = openai_client(stack.url, stack.api_keys["alice"], MAIN_PROJECT)
    completion = client.chat.completions.create(model=FAST_MODEL, messages=HELLO)
    assert completion.object == "chat.completion"
    assert completion.model == FAST_MODEL
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content.startswith("Lorem ipsum")
    assert completion.usage.completion_tokens == FAKE_TOKENS
    assert completion.usage.prompt_tokens > 0
    [row] = stack.usage_rows_since(before, expect=1)
    assert row["model"] == FAST_MODEL and row["deployment"] == "fake-fast"
    assert (row["team"], row["project"], row["source"]) == ("acme", "main", "api")
    assert row["status"] == "ok" and row["http_status"] == 200
    assert row["prompt_tokens"] == completion.usage.prompt_tokens
    assert row["completion_tokens"] == FAKE_TOKENS
    assert not row["tokens_counted_by_gateway"]


def test_streaming_with_include_usage_ends_with_a_usage_chunk(stack):
    before = stack.usage_rows()
    client = openai_client(stack.url, stack.api_keys["alice"], MAIN_PROJECT)
    stream = client.chat.completions.create(
        model=FAST_MODEL,
        messages=HELLO,
        max_tokens=10,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("Lorem ipsum")
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 10
    assert all(c.usage is None for c in chunks[:-1])
    finish = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finish == ["length"]
    [row] = stack.usage_rows_since(before, expect=1)
    assert row["status"] == "ok" and row["completion_tokens"] == 10
    assert row["time_to_first_token_ms"] is not None


def test_streaming_without_include_usage_sends_no_usage_chunk_but_records_usage(stack):
    before = stack.usage_rows()
    client = openai_client(stack.url, stack.api_keys["alice"], MAIN_PROJECT)
    chunks = list(
        client.chat.completions.create(model=FAST_MODEL, messages=HELLO, max_tokens=6, stream=True)
    )
    assert all(c.choices for c in chunks) and all(c.usage is None for c in chunks)
    [row] = stack.usage_rows_since(before, expect=1)
    # The gateway always asks the engine for usage, whatever the client asked for.
    assert row["completion_tokens"] == 6 and not row["tokens_counted_by_gateway"]


def test_raw_sse_wire_format(stack):
    with httpx.stream(
        "POST",
        f"{stack.url}/v1/chat/completions",
        json={"model": FAST_MODEL, "messages": HELLO, "max_tokens": 3, "stream": True},
        headers=api_headers(stack.api_keys["alice"], MAIN_PROJECT),
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line for line in response.iter_lines() if line]
    assert all(line.startswith("data: ") for line in events)
    assert events[-1] == "data: [DONE]"


async def test_async_client_plain_and_streaming(stack):
    before = stack.usage_rows()
    client = async_openai_client(stack.url, stack.api_keys["alice"], MAIN_PROJECT)
    completion = await client.chat.completions.create(model=FAST_MODEL, messages=HELLO)
    assert completion.usage.completion_tokens == FAKE_TOKENS
    stream = await client.chat.completions.create(
        model=FAST_MODEL,
        messages=HELLO,
        max_tokens=5,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[-1].usage.completion_tokens == 5
    await client.close()
    rows = stack.usage_rows_since(before, expect=2)
    assert sorted(row["completion_tokens"] for row in rows) == [5, FAKE_TOKENS]
    assert len({row["request_id"] for row in rows}) == 2


def test_max_completion_tokens_caps_the_answer(stack):
    client = openai_client(stack.url, stack.api_keys["alice"], MAIN_PROJECT)
    completion = client.chat.completions.create(
        model=FAST_MODEL, messages=HELLO, max_completion_tokens=7
    )
    assert completion.usage.completion_tokens == 7


NO_USAGE_MODEL = "test/no-usage"


@pytest.fixture(scope="module")
def no_usage_engine(tmp_path_factory, sqlite_stack):
    """A fake engine that never reports usage, behind a model of its own."""
    engine = start_fake_engine(var_dir=tmp_path_factory.mktemp("no-usage-engine"), no_usage=1)
    sqlite_stack.seed(
        {
            "models": [{"model_id": NO_USAGE_MODEL}],
            "deployments": [
                {"name": "fake-no-usage", "model": NO_USAGE_MODEL, "base_url": engine.base_url}
            ],
        }
    )
    yield engine
    engine.stop()


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_missing_engine_usage_is_counted_by_the_gateway_never_zero(stack, no_usage_engine, stream):
    before = stack.usage_rows()
    client = openai_client(stack.url, stack.api_keys["alice"], MAIN_PROJECT)
    if stream:
        chunks = list(
            client.chat.completions.create(
                model=NO_USAGE_MODEL,
                messages=HELLO,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        usage = chunks[-1].usage
        # One token per content delta at least (the fake engine sends FAKE_TOKENS of them).
        assert usage.completion_tokens >= FAKE_TOKENS
    else:
        usage = client.chat.completions.create(model=NO_USAGE_MODEL, messages=HELLO).usage
        assert usage.completion_tokens > 0
    assert usage.prompt_tokens > 0
    [row] = stack.usage_rows_since(before, expect=1)
    assert row["tokens_counted_by_gateway"]
    assert (row["prompt_tokens"], row["completion_tokens"]) == (
        usage.prompt_tokens,
        usage.completion_tokens,
    )
