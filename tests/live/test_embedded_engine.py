"""End to end through the REAL embedded engine (SmolLM2-135M on llama.cpp): real text, real usage.

It is a real model: these tests assert structure and numbers, never wording. Generations stay
short (max_tokens 16) to keep the module quick.
"""

import time

import httpx
import openai
import pytest

from tests.support.clients import (
    async_openai_client,
    create_once_a_slot_is_free,
    openai_client,
    stream_then_hang_up,
)
from tests.support.stack import Stack, sqlite_database_url
from tests.support.world import DROP_PROJECT, EMBEDDED_MODEL, MAIN_PROJECT, standard_world

pytestmark = pytest.mark.engine

HELLO = [{"role": "user", "content": "Name three colours."}]
MAX_TOKENS = 16


@pytest.fixture(scope="module")
def stack(tmp_path_factory, embedded_engine):
    var_dir = tmp_path_factory.mktemp("engine-stack")
    stack = Stack(
        database_url=sqlite_database_url(var_dir),
        var_dir=var_dir,
        embedded_engine_url=embedded_engine.base_url,
    )
    try:
        stack.migrate()
        stack.seed(standard_world(fake_engine_url=None, embedded=True))
        stack.start_servers(1)
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def client(stack):
    return openai_client(stack.url, stack.api_keys["alice"], MAIN_PROJECT)


def engine_metrics(engine) -> dict[str, float]:
    """llama.cpp's Prometheus counters (tokens_predicted_total counts cancelled requests too)."""
    text = httpx.get(f"{engine.root_url}/metrics", timeout=5).text
    return {
        line.split()[0]: float(line.split()[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


def test_models_list_shows_the_embedded_model(client):
    assert EMBEDDED_MODEL in {model.id for model in client.models.list()}


def test_sync_non_streaming_gets_real_text_and_real_usage(stack, client):
    before = stack.usage_rows()
    completion = client.chat.completions.create(
        model=EMBEDDED_MODEL, messages=HELLO, max_tokens=MAX_TOKENS
    )
    assert completion.model == EMBEDDED_MODEL
    assert completion.choices[0].message.content.strip()
    usage = completion.usage
    assert usage.prompt_tokens > 0 and 0 < usage.completion_tokens <= MAX_TOKENS
    [row] = stack.usage_rows_since(before, expect=1)
    assert (row["prompt_tokens"], row["completion_tokens"]) == (
        usage.prompt_tokens,
        usage.completion_tokens,
    )
    assert row["status"] == "ok" and row["deployment"] == "embedded-llamacpp"
    assert not row["tokens_counted_by_gateway"]


def test_sync_streaming_with_include_usage_gets_the_final_usage_chunk(stack, client):
    before = stack.usage_rows()
    stream = client.chat.completions.create(
        model=EMBEDDED_MODEL,
        messages=HELLO,
        max_tokens=MAX_TOKENS,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    final = chunks[-1]
    assert final.choices == []
    assert final.usage.prompt_tokens > 0 and 0 < final.usage.completion_tokens <= MAX_TOKENS
    [row] = stack.usage_rows_since(before, expect=1)
    assert row["completion_tokens"] == final.usage.completion_tokens
    assert row["prompt_tokens"] == final.usage.prompt_tokens
    assert row["status"] == "ok" and row["time_to_first_token_ms"] is not None


async def test_async_non_streaming_and_streaming(stack):
    before = stack.usage_rows()
    client = async_openai_client(stack.url, stack.api_keys["alice"], MAIN_PROJECT)
    completion = await client.chat.completions.create(
        model=EMBEDDED_MODEL, messages=HELLO, max_tokens=MAX_TOKENS
    )
    assert completion.choices[0].message.content.strip()
    assert completion.usage.completion_tokens > 0
    stream = await client.chat.completions.create(
        model=EMBEDDED_MODEL,
        messages=HELLO,
        max_tokens=MAX_TOKENS,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    await client.close()
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).strip()
    assert chunks[-1].usage.completion_tokens > 0
    rows = stack.usage_rows_since(before, expect=2)
    assert len(rows) == 2 and all(row["status"] == "ok" for row in rows)


@pytest.mark.parametrize(
    "sampling", [{"temperature": 0}, {"temperature": 1.0, "seed": 1234}], ids=["greedy", "seeded"]
)
def test_sampling_parameters_reach_the_engine(client, sampling):
    """Greedy decoding, or a fixed seed, makes the real model repeat itself word for word;
    the engine's default sampling (temperature 0.8, a random seed) would not."""
    story = [{"role": "user", "content": "Write one sentence about the sea."}]
    answers = {
        client.chat.completions.create(
            model=EMBEDDED_MODEL, messages=story, max_tokens=MAX_TOKENS, **sampling
        )
        .choices[0]
        .message.content
        for _ in range(2)
    }
    assert len(answers) == 1, answers


def test_max_tokens_beyond_the_context_window_is_bad_request(stack):
    client = openai_client(stack.url, stack.api_keys["alice"], MAIN_PROJECT, max_retries=0)
    before = stack.usage_rows()
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=EMBEDDED_MODEL, messages=HELLO, max_tokens=10**7)
    assert caught.value.param == "max_tokens"
    assert stack.usage_rows_since(before, timeout=0.3) == []


def test_dropped_stream_stops_generation_and_bills_the_tokens_made(stack, embedded_engine):
    """Read 5 tokens of a 300-token answer, hang up: the engine stops, one row, tokens made."""
    before = stack.usage_rows()
    predicted_before = engine_metrics(embedded_engine)["llamacpp:tokens_predicted_total"]
    max_tokens = 300
    body = {
        "model": EMBEDDED_MODEL,
        "messages": [{"role": "user", "content": "Write a long story about a dragon."}],
        "max_tokens": max_tokens,
    }
    read = stream_then_hang_up(stack.url, stack.api_keys["alice"], DROP_PROJECT, body, chunks=5)
    assert read == 5

    # The engine stops: nothing in progress, and the token counter stops moving.
    deadline = time.monotonic() + 10
    previous = None
    while time.monotonic() < deadline:
        metrics = engine_metrics(embedded_engine)
        current = metrics["llamacpp:tokens_predicted_total"]
        if metrics["llamacpp:requests_processing"] == 0 and current == previous:
            break
        previous = current
        time.sleep(0.3)
    metrics = engine_metrics(embedded_engine)
    assert metrics["llamacpp:requests_processing"] == 0
    produced = metrics["llamacpp:tokens_predicted_total"] - predicted_before
    assert 5 <= produced < max_tokens, produced

    # The slot is free (acme/drop allows one request at a time).
    client = openai_client(stack.url, stack.api_keys["alice"], DROP_PROJECT, max_retries=0)
    assert create_once_a_slot_is_free(client, model=EMBEDDED_MODEL, messages=HELLO, max_tokens=4)

    rows = stack.usage_rows_since(before, expect=2)
    dropped = [row for row in rows if row["status"] == "cancelled"]
    assert len(dropped) == 1, rows
    # What the gateway records lies between what the client saw and what the engine made.
    assert read <= dropped[0]["completion_tokens"] <= produced, (dropped[0], produced)
