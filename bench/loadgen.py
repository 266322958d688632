"""Load generator: chat completions at a fixed concurrency, with per-request timings.

    .venv/bin/python -m bench.loadgen --url http://127.0.0.1:18301/v1/chat/completions \\
        --concurrency 16 --count 2000 [--stream] [--duration 10] [--api-key KEY]

Records, per request: latency (send to last byte), time to first token (streaming: send to the
first chunk with non-empty content), tokens received, errors (non-2xx, an `error` chunk, a stream
without `[DONE]`, or an exception). One aiohttp.ClientSession (connector limit = concurrency,
keep-alive: one connection per worker) on uvloop; the generator's own CPU share is reported.
"""

import argparse
import asyncio
import json
import math
import statistics
import time
from dataclasses import dataclass, field

import aiohttp
import orjson
import uvloop

MODEL = "microsoft/Phi-4-mini-instruct"


@dataclass
class Sample:
    latency: float
    ttft: float | None = None
    tokens: int = 0
    error: str | None = None


@dataclass
class LoadResult:
    samples: list[Sample] = field(default_factory=list)
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0  # the load generator's own CPU time over wall_seconds

    @property
    def ok(self) -> list[Sample]:
        return [s for s in self.samples if s.error is None]

    @property
    def errors(self) -> int:
        return len(self.samples) - len(self.ok)

    def error_kinds(self) -> dict[str, int]:
        kinds: dict[str, int] = {}
        for s in self.samples:
            if s.error:
                kinds[s.error] = kinds.get(s.error, 0) + 1
        return kinds

    @property
    def rps(self) -> float:
        return len(self.ok) / self.wall_seconds if self.wall_seconds else 0.0

    @property
    def generator_cpu_share(self) -> float | None:
        """The load generator's CPU time over wall time: 1.0 is its whole core."""
        return self.cpu_seconds / self.wall_seconds if self.wall_seconds else None

    def latency_ms(self, q: float) -> float | None:
        return percentile([s.latency for s in self.ok], q)

    def ttft_ms(self, q: float) -> float | None:
        return percentile([s.ttft for s in self.ok if s.ttft is not None], q)

    def tokens_per_second(self) -> float | None:
        """Median, over streams, of tokens after the first divided by the time they took."""
        rates = [
            (s.tokens - 1) / (s.latency - s.ttft)
            for s in self.ok
            if s.ttft is not None and s.tokens > 1 and s.latency > s.ttft
        ]
        return statistics.median(rates) if rates else None

    def summary(self) -> dict:
        return {
            "requests": len(self.samples),
            "errors": self.errors,
            "error_kinds": self.error_kinds(),
            "rps": round(self.rps, 1),
            "latency_p50_ms": _round(self.latency_ms(50)),
            "latency_p99_ms": _round(self.latency_ms(99)),
            "ttft_p50_ms": _round(self.ttft_ms(50)),
            "ttft_p99_ms": _round(self.ttft_ms(99)),
            "tokens_per_second": _round(self.tokens_per_second()),
            "generator_cpu_share": _round(self.generator_cpu_share),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile in milliseconds (nearest rank) of values in seconds."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[rank] * 1000


def chat_body(*, stream: bool, max_tokens: int = 16, model: str = MODEL) -> bytes:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "Say something about benchmarks."}],
        "max_tokens": max_tokens,
        "stream": stream,
    }
    if stream:
        body["stream_options"] = {"include_usage": True}
    return json.dumps(body).encode()


async def _one_plain(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict
) -> Sample:
    start = time.perf_counter()
    try:
        async with session.post(url, data=body, headers=headers) as response:
            data = await response.read()
            latency = time.perf_counter() - start
            if response.status != 200:
                return Sample(latency, error=f"http {response.status}")
        tokens = (orjson.loads(data).get("usage") or {}).get("completion_tokens", 0)
        return Sample(latency, tokens=tokens)
    except Exception as exc:  # noqa: BLE001 - every failure is a counted error, not a crash
        return Sample(time.perf_counter() - start, error=type(exc).__name__)


async def _one_stream(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict
) -> Sample:
    start = time.perf_counter()
    ttft = None
    tokens = 0
    done = False
    try:
        async with session.post(url, data=body, headers=headers) as response:
            if response.status != 200:
                await response.read()
                return Sample(time.perf_counter() - start, error=f"http {response.status}")
            async for line in response.content:
                if not line.startswith(b"data:"):
                    continue
                payload = line[5:].strip()
                if payload == b"[DONE]":
                    done = True
                    break
                if ttft is None:
                    # Parse chunks only until the first token; afterwards a substring test is
                    # enough and keeps the load generator's CPU out of the figures.
                    chunk = orjson.loads(payload)
                    if "error" in chunk:
                        return Sample(time.perf_counter() - start, error="error chunk")
                    choices = chunk.get("choices") or []
                    if choices and (choices[0].get("delta") or {}).get("content"):
                        ttft = time.perf_counter() - start
                        tokens = 1
                elif b'"content"' in payload:
                    tokens += 1
                elif payload.startswith(b'{"error"'):
                    return Sample(time.perf_counter() - start, error="error chunk")
        latency = time.perf_counter() - start
        if not done:
            return Sample(latency, ttft, tokens, error="no [DONE]")
        return Sample(latency, ttft, tokens)
    except Exception as exc:  # noqa: BLE001 - every failure is a counted error, not a crash
        return Sample(time.perf_counter() - start, ttft, tokens, error=type(exc).__name__)


def make_session(concurrency: int) -> aiohttp.ClientSession:
    """One session, one keep-alive connection per worker, no cookies, no decompression."""
    connector = aiohttp.TCPConnector(limit=concurrency, keepalive_timeout=60, force_close=False)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=120, connect=30),
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
    )


async def run_load(
    *,
    url: str,
    concurrency: int,
    stream: bool = False,
    count: int | None = None,
    duration: float | None = None,
    body: bytes | None = None,
    headers: dict | None = None,
    warmup: int = 0,
) -> LoadResult:
    """Send `count` requests (or keep going for `duration` seconds) from `concurrency` workers.

    Also measures this process's own CPU time over the timed part (not the warm-up): the
    generator's CPU share of its core, to tell when the generator, not the server, is the limit.
    """
    if count is None and duration is None:
        raise ValueError("give count or duration")
    body = body or chat_body(stream=stream)
    headers = {"content-type": "application/json", **(headers or {})}
    one = _one_stream if stream else _one_plain
    result = LoadResult()
    async with make_session(concurrency) as session:
        if warmup:
            await asyncio.gather(*(one(session, url, body, headers) for _ in range(warmup)))
        remaining = [count if count is not None else 1 << 62]
        deadline = time.perf_counter() + duration if duration else float("inf")

        async def worker() -> None:
            while remaining[0] > 0 and time.perf_counter() < deadline:
                remaining[0] -= 1
                result.samples.append(await one(session, url, body, headers))

        cpu_start = time.process_time()
        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        result.wall_seconds = time.perf_counter() - start
        result.cpu_seconds = time.process_time() - cpu_start
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--count", type=int)
    parser.add_argument("--duration", type=float)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--model", default=MODEL)
    parser.add_argument("--api-key")
    parser.add_argument("--project", help="OpenAI-Project header (team/project)")
    args = parser.parse_args()
    headers = {}
    if args.api_key:
        headers["authorization"] = f"Bearer {args.api_key}"
    if args.project:
        headers["openai-project"] = args.project
    body = chat_body(stream=args.stream, max_tokens=args.max_tokens, model=args.model)
    result = uvloop.run(
        run_load(
            url=args.url,
            concurrency=args.concurrency,
            stream=args.stream,
            count=args.count,
            duration=args.duration if args.count is None else None,
            body=body,
            headers=headers,
            warmup=min(args.concurrency, 8),
        )
    )
    print(json.dumps(result.summary(), indent=2))


if __name__ == "__main__":
    main()
