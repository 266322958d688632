"""The benchmark's scenarios; each takes a Target and returns a flat dict of figures."""

import asyncio
import json
import statistics
import time
from urllib.parse import urlsplit

import httpx

from bench.loadgen import chat_body, percentile, run_load
from bench.targets import FAST_MODEL, PACED_MODEL, Process, Target
from bench.ws_client import WebSocket


async def requests_at(
    target: Target,
    *,
    concurrency: int,
    duration: float,
    stream: bool,
    max_tokens: int = 16,
    engine: Process | None = None,
) -> dict:
    """Non-streaming or streaming requests at a fixed concurrency for `duration` seconds.

    Besides the load generator's figures: the server's CPU time per request (its whole process
    tree), a figure that moves much less than latencies on a shared machine (for ours-pg it
    leaves out PostgreSQL's and Redis's own CPU); the server's and the fake engine's CPU share of
    their cores over the scenario, next to the generator's own (the engine shares its core).
    """
    warmup = min(concurrency, 8)
    cpu_before = target.process.cpu_seconds() if target.process else None
    engine_before = engine.cpu_seconds() if engine is not None else None
    clock = time.perf_counter()
    result = await run_load(
        url=target.chat_url,
        concurrency=concurrency,
        duration=duration,
        stream=stream,
        body=chat_body(stream=stream, max_tokens=max_tokens, model=FAST_MODEL),
        headers=target.headers,
        warmup=warmup,
    )
    elapsed = time.perf_counter() - clock
    summary = result.summary()
    if engine_before is not None:
        summary["engine_cpu_share"] = round((engine.cpu_seconds() - engine_before) / elapsed, 3)
    if cpu_before is not None:
        server_cpu = target.process.cpu_seconds() - cpu_before
        summary["server_cpu_share"] = round(server_cpu / elapsed, 3)
        # Work that follows the response (usage rows) belongs to these requests too.
        await asyncio.sleep(0.3)
        cpu = target.process.cpu_seconds() - cpu_before
        summary["server_cpu_ms_per_request"] = round(
            1000 * cpu / max(1, len(result.samples) + warmup), 3
        )
    return summary


class _RssSampler:
    """Peak resident memory of a process, sampled every 0.2 s while a scenario runs."""

    def __init__(self, process: Process | None) -> None:
        self.process = process
        self.peak: float | None = None
        self._task: asyncio.Task | None = None

    async def _run(self) -> None:
        while True:
            rss = self.process.rss_mb()
            if rss is not None:
                self.peak = max(self.peak or 0.0, rss)
            await asyncio.sleep(0.2)

    def __enter__(self):
        if self.process is not None:
            self._task = asyncio.ensure_future(self._run())
        return self

    def __exit__(self, *exc):
        if self._task is not None:
            self._task.cancel()


async def _engine_stats(client: httpx.AsyncClient, engine_root: str) -> dict:
    return (await client.get(engine_root + "/stats")).json()


async def many_streams(
    target: Target,
    *,
    streams: int,
    engine_root: str,
    server: Process | None,
    hold_seconds: float = 3.0,
    ramp_timeout: float = 150.0,
) -> dict:
    """Open `streams` concurrent SSE streams, hold them, then hang up on all of them.

    The paced model sends one token a second, so a stream stays open until the client leaves.
    Figures: how long until every stream had its first token or failed (ramp), how many were
    streaming at the end of the hold (checked against the engine's in-flight count), errors, the
    server's peak RSS, and how many engine streams were cancelled after the hang-up.
    """
    body = chat_body(stream=True, max_tokens=600, model=PACED_MODEL)
    headers = {"content-type": "application/json", **target.headers}
    limits = httpx.Limits(max_connections=streams + 10, max_keepalive_connections=0)
    opened = 0  # streams that got their first token
    open_now = 0  # of those, still streaming
    errors: dict[str, int] = {}
    all_open = asyncio.Event()

    def settled() -> None:
        # Every stream has either started or failed: the ramp is over either way.
        if opened + sum(errors.values()) >= streams:
            all_open.set()

    def fail(kind: str) -> None:
        errors[kind] = errors.get(kind, 0) + 1
        settled()

    async def one(client: httpx.AsyncClient) -> None:
        nonlocal opened, open_now
        counted = False
        try:
            async with client.stream("POST", target.chat_url, content=body, headers=headers) as r:
                if r.status_code != 200:
                    fail(f"http {r.status_code}")
                    return
                async for line in r.aiter_lines():
                    if '"error"' in line:
                        fail("error chunk")
                        return
                    if (
                        not counted
                        and '"content"' in line
                        and '"content":""' not in line.replace(" ", "")
                    ):
                        counted = True
                        opened += 1
                        open_now += 1
                        settled()
                    if line.startswith("data: [DONE]"):
                        fail("ended early")
                        return
                fail("closed early")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - counted, not raised
            fail(type(exc).__name__)
        finally:
            if counted:
                open_now -= 1

    rss_before = server.rss_mb() if server else None
    timeout = httpx.Timeout(ramp_timeout + 60, connect=60.0, pool=ramp_timeout)
    async with (
        httpx.AsyncClient(timeout=timeout) as control,
        httpx.AsyncClient(limits=limits, timeout=timeout) as client,
    ):
        await control.post(engine_root + "/stats/reset")
        with _RssSampler(server) as rss:
            start = time.perf_counter()
            tasks = [asyncio.ensure_future(one(client)) for _ in range(streams)]
            try:
                await asyncio.wait_for(all_open.wait(), ramp_timeout)
            except TimeoutError:
                pass
            ramp = time.perf_counter() - start
            await asyncio.sleep(hold_seconds)
            alive = open_now
            engine_in_flight = (await _engine_stats(control, engine_root))["in_flight"]
            errors_before_hangup = sum(errors.values())
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks, timeout=30)
        # The gateway should cancel every engine stream once its client is gone.
        deadline = time.perf_counter() + 30
        stats = await _engine_stats(control, engine_root)
        while stats["in_flight"] and time.perf_counter() < deadline:
            await asyncio.sleep(0.5)
            stats = await _engine_stats(control, engine_root)
        # ...and give back every concurrency slot (a failed release leaks one until its lease ends).
        slots = target.slots_held() if target.slots_held else None
        while slots and time.perf_counter() < deadline:
            await asyncio.sleep(0.5)
            slots = target.slots_held()
    return {
        "streams": streams,
        "opened": opened,
        "held": alive,
        "engine_in_flight": engine_in_flight,
        "errors": errors_before_hangup,
        "error_kinds": errors,
        "ramp_seconds": round(ramp, 2),
        "rss_before_mb": _round1(rss_before),
        "rss_peak_mb": _round1(rss.peak),
        "engine_cancelled": stats["cancelled_streams"],
        "engine_left_open": stats["in_flight"],
        "slots_left_held": slots,
    }


def _round1(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


async def compare_fanout(target: Target, *, models: list[str], runs: int) -> dict:
    """One Compare of len(models) panes over the Playground websocket, `runs` times.

    The fake engine stamps each stream's first token with its clock; the delay is from that
    stamp to this client reading the pane's first `delta` message (same machine, same clock).
    """
    parts = urlsplit(target.base_url)
    headers = {
        "Origin": f"http://{parts.hostname}:{parts.port}",
        "Cookie": f"sessionid={target.seed['session_key']}",
    }
    delays: list[float] = []
    spreads: list[float] = []
    errors = 0
    for run in range(runs):
        ws = await WebSocket.connect(parts.hostname, parts.port, "/ws/playground/", headers)
        try:
            for i, model in enumerate(models):
                await ws.send_json(
                    {
                        "type": "run",
                        "pane": f"p{i}",
                        "run": f"r{run}",
                        "model": model,
                        "messages": [{"role": "user", "content": "Compare yourselves."}],
                        "params": {"max_tokens": 16},
                    }
                )
            pending = {f"p{i}" for i in range(len(models))}
            firsts: dict[str, float] = {}
            deadline = time.time() + 30
            while pending and time.time() < deadline:
                event = await asyncio.wait_for(ws.receive_json(), timeout=30)
                now = time.time()
                pane = event.get("pane")
                if event.get("type") == "delta" and pane not in firsts:
                    content = event.get("content", "")
                    if content.startswith("@"):
                        firsts[pane] = now
                        delays.append(now - float(content[1:]))
                elif event.get("type") in ("done", "error"):
                    if event["type"] == "error":
                        errors += 1
                    pending.discard(pane)
            errors += len(pending)
            if len(firsts) > 1:
                spreads.append(max(firsts.values()) - min(firsts.values()))
        finally:
            await ws.close()
    return {
        "panes": len(models) * runs,
        "errors": errors,
        "delay_p50_ms": _ms(percentile(delays, 50)),
        "delay_p99_ms": _ms(percentile(delays, 99)),
        "delay_max_ms": _ms(max(delays) * 1000 if delays else None),
        "spread_p50_ms": _ms(statistics.median(spreads) * 1000 if spreads else None),
    }


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def dumps(figures: dict) -> str:
    return json.dumps(figures, separators=(",", ":"))
