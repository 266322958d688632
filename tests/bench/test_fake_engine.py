"""The fake engine the benchmark (and other tests) rely on: the OpenAI wire shapes, the
per-request overrides, and the counters, through a real daphne process."""

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _daphne(app: str, env: dict, what: str):
    """`app` under daphne on a free port; yields its base URL once /health answers."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), app],
        cwd=ROOT,
        env={**env, "PATH": "/usr/bin:/bin"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(base + "/health", timeout=1)
            break
        except httpx.HTTPError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                pytest.fail(f"{what} did not start")
            time.sleep(0.1)
    yield base
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="module")
def engine():
    env = {
        "FAKE_ENGINE_TOKENS": "5",
        "FAKE_ENGINE_MODELS": "fake-a,fake-b",
        "FAKE_ENGINE_MODEL_OVERRIDES": json.dumps({"slow-model": {"delay_ms": 300}}),
    }
    yield from _daphne("bench.fake_engine:app", env, "the fake engine")


def _chat(base: str, headers=None, **body) -> httpx.Response:
    body = {"model": "fake-a", "messages": [{"role": "user", "content": "hello"}], **body}
    return httpx.post(base + "/v1/chat/completions", json=body, headers=headers, timeout=10)


def _events(response: httpx.Response) -> list:
    lines = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    return [line if line == "[DONE]" else json.loads(line) for line in lines]


def test_lists_models_and_health(engine):
    models = httpx.get(engine + "/v1/models").json()
    assert models["object"] == "list"
    assert [m["id"] for m in models["data"]] == ["fake-a", "fake-b"]
    assert httpx.get(engine + "/health").json() == {"status": "ok"}


def test_non_streaming_completion_with_usage_and_max_tokens_cap(engine):
    full = _chat(engine).json()
    assert full["object"] == "chat.completion"
    assert full["model"] == "fake-a"
    assert full["choices"][0]["message"]["role"] == "assistant"
    assert full["usage"]["completion_tokens"] == 5
    assert full["choices"][0]["finish_reason"] == "stop"
    capped = _chat(engine, max_tokens=2).json()
    assert capped["usage"]["completion_tokens"] == 2
    assert capped["choices"][0]["finish_reason"] == "length"
    usage = capped["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_stream_shape_with_usage_chunk(engine):
    events = _events(_chat(engine, stream=True, stream_options={"include_usage": True}))
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    content = [c["choices"][0]["delta"].get("content") for c in chunks if c["choices"]]
    assert len([x for x in content if x]) == 5
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == 5


def test_stream_without_include_usage_has_no_usage_chunk(engine):
    events = _events(_chat(engine, stream=True))
    assert events[-1] == "[DONE]"
    assert all(e["choices"] for e in events[:-1])


def test_header_overrides_tokens_rate_and_stamp(engine):
    headers = {"x-fake-tokens": "3", "x-fake-tokens-per-second": "20", "x-fake-stamp": "1"}
    start = time.time()
    response = _chat(engine, headers=headers, stream=True)
    elapsed = time.time() - start
    events = _events(response)
    content = [e["choices"][0]["delta"].get("content") for e in events[:-1] if e["choices"]]
    tokens = [x for x in content if x]
    assert len(tokens) == 3
    stamp = float(tokens[0][1:])
    assert start - 1 < stamp < time.time()
    assert elapsed >= 2 / 20  # two gaps at 20 tokens/s


def test_delay_per_model_and_per_header(engine):
    start = time.monotonic()
    _chat(engine, model="slow-model")
    assert time.monotonic() - start >= 0.3
    start = time.monotonic()
    _chat(engine, headers={"x-fake-delay-ms": "200"})
    assert time.monotonic() - start >= 0.2


def test_stats_count_requests_concurrency_and_cancelled_streams(engine):
    httpx.post(engine + "/stats/reset")
    _chat(engine)
    # A client that hangs up mid-stream is counted as a cancelled stream.
    with httpx.stream(
        "POST",
        engine + "/v1/chat/completions",
        json={"model": "fake-a", "messages": [], "stream": True},
        headers={"x-fake-tokens": "100", "x-fake-tokens-per-second": "10"},
        timeout=10,
    ) as response:
        for line in response.iter_lines():
            if '"content": "Lorem"' in line:
                break
    deadline = time.monotonic() + 5
    stats = httpx.get(engine + "/stats").json()
    while stats["in_flight"] and time.monotonic() < deadline:
        time.sleep(0.05)
        stats = httpx.get(engine + "/stats").json()
    assert stats["total_requests"] == 2
    assert stats["completed"] == 1
    assert stats["streams"] == 1
    assert stats["cancelled_streams"] == 1
    assert stats["in_flight"] == 0
    assert stats["max_concurrent"] >= 1
    reset = httpx.post(engine + "/stats/reset").json()
    assert reset["total_requests"] == 0 and reset["cancelled_streams"] == 0


def test_bad_json_is_a_400_error_body(engine):
    response = httpx.post(engine + "/v1/chat/completions", content=b"{not json")
    assert response.status_code == 400
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


@pytest.fixture(scope="module")
def relay(engine):
    """bench.relay_floor (the floor the gateway is measured against) in front of the engine."""
    yield from _daphne("bench.relay_floor:app", {"RELAY_ENGINE_URL": engine + "/v1"}, "the relay")


def test_the_relay_floor_passes_answers_through_unchanged(engine, relay):
    plain = _chat(relay, max_tokens=3).json()
    assert plain["object"] == "chat.completion" and plain["usage"]["completion_tokens"] == 3
    events = _events(_chat(relay, stream=True, stream_options={"include_usage": True}))
    assert events[-1] == "[DONE]"
    assert events[-2]["usage"]["completion_tokens"] == 5
    assert _events(_chat(engine, stream=True))[-1] == "[DONE]"
