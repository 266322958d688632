"""What tracing costs the gateway: CPU per request with traces off, then on, same load.

    .venv/bin/python -m bench.tracing_cost                       # SQLite, 3000 requests a mode
    .venv/bin/python -m bench.tracing_cost --scaled --requests 5000 --rounds 3

Starts the fake engine and a seeded gateway (one daphne process, as bench.run) with
YARDSTICK_TRACES=0, then another with YARDSTICK_TRACES=1 (the setting is read at start), and
sends each the same load: non-streaming and streaming, concurrency 16. CPU is the gateway
process's own (all its threads: the settlement writer that writes usage rows and calls runs in
it), read from /proc before and after each load; the load is followed by a short quiet spell
so batches still being written are counted, and the process's idle CPU over the same spell is
subtracted. Rounds alternate off/on so drift on a shared machine hits both sides alike; the
median per side is printed, with the difference (target: under 0.3 ms per request).
"""

import argparse
import asyncio
import os
import sqlite3
import statistics
import time
from pathlib import Path
from urllib.parse import urlparse

from bench import targets
from bench.loadgen import chat_body, run_load

TARGET_ADDED_MS = 0.3
QUIET_SECONDS = 1.5  # settlement batches every 50 ms; this leaves them time to land


def _database_url(pid: int) -> str:
    """The gateway's DATABASE_URL, from its environment (bench.targets chose it)."""
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    env = dict(item.decode().split("=", 1) for item in raw if b"=" in item)
    return env["DATABASE_URL"]


def _count(url: str, table: str) -> int:
    if url.startswith("sqlite"):
        path = "/" + urlparse(url).path.lstrip("/")
        with sqlite3.connect(path, timeout=20) as conn:
            return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def _idle_cpu(process, seconds: float) -> float:
    before = process.cpu_seconds()
    time.sleep(seconds)
    return process.cpu_seconds() - before


def measure(gateway, *, stream: bool, requests: int, concurrency: int) -> dict:
    body = chat_body(stream=stream, max_tokens=16, model=targets.FAST_MODEL)

    def load(count: int):
        return run_load(
            url=gateway.chat_url,
            concurrency=concurrency,
            count=count,
            stream=stream,
            body=body,
            headers=gateway.headers,
        )

    asyncio.run(load(max(100, requests // 10)))  # warm-up: caches, connections, partitions
    time.sleep(QUIET_SECONDS)
    idle = _idle_cpu(gateway.process, QUIET_SECONDS)
    before = gateway.process.cpu_seconds()
    result = asyncio.run(load(requests))
    time.sleep(QUIET_SECONDS)
    cpu = gateway.process.cpu_seconds() - before - idle
    summary = result.summary()
    done = max(1, summary["requests"] - summary["errors"])
    return {
        "cpu_ms": 1000 * cpu / done,
        "rps": summary["rps"],
        "errors": summary["errors"],
        "requests": summary["requests"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="per mode and round")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--scaled", action="store_true", help="PostgreSQL + Redis")
    args = parser.parse_args()
    if targets.pinning_enabled():
        os.sched_setaffinity(0, {int(targets.CLIENT_CPU)})
    log_dir = targets.ROOT / "bench" / "results" / "logs" / time.strftime("tracing-%Y%m%d-%H%M%S")
    log_dir.mkdir(parents=True, exist_ok=True)
    modes = {"non-streaming": False, "streaming": True}
    figures: dict = {(side, mode): [] for side in ("off", "on") for mode in modes}
    written: dict = {}
    engine, engine_url = targets.start_fake_engine(log_dir)
    try:
        for round_no in range(args.rounds):
            for side in ("off", "on") if round_no % 2 == 0 else ("on", "off"):
                os.environ["YARDSTICK_TRACES"] = "1" if side == "on" else "0"
                gateway = targets.gateway_target(
                    f"ours-{'pg' if args.scaled else 'sqlite'}-traces-{side}",
                    engine_url,
                    scaled=args.scaled,
                    log_dir=log_dir,
                )
                try:
                    for mode, stream in modes.items():
                        figure = measure(
                            gateway,
                            stream=stream,
                            requests=args.requests,
                            concurrency=args.concurrency,
                        )
                        figures[side, mode].append(figure)
                        print(
                            f"round {round_no + 1} traces {side:3} {mode:13}"
                            f" {figure['cpu_ms']:6.3f} ms CPU/request, {figure['rps']} req/s,"
                            f" {figure['errors']} errors",
                            flush=True,
                        )
                    url = _database_url(gateway.process.pid)
                    written[side] = (
                        _count(url, "billing_usagerecord"),
                        _count(url, "traces_call"),
                        _count(url, "traces_call_body"),
                    )
                finally:
                    gateway.stop()
    finally:
        os.environ.pop("YARDSTICK_TRACES", None)
        engine.stop()

    database = "PostgreSQL + Redis" if args.scaled else "SQLite"
    print(
        f"\nGateway CPU per request, {database}, c={args.concurrency},"
        f" {args.requests} requests x {args.rounds} round(s) per cell (median):"
    )
    print(f"  {'mode':13}  {'traces off':>10}  {'traces on':>10}  {'added':>8}")
    worst = 0.0
    for mode in modes:
        off = statistics.median(f["cpu_ms"] for f in figures["off", mode])
        on = statistics.median(f["cpu_ms"] for f in figures["on", mode])
        worst = max(worst, on - off)
        print(f"  {mode:13}  {off:8.3f} ms  {on:8.3f} ms  {on - off:+6.3f} ms")
    for side, (usage, calls, bodies) in written.items():
        print(
            f"  traces {side}: last gateway wrote {usage} usage rows, {calls} calls, {bodies} bodies"
        )
    if written.get("on", (0, 0, 0))[1] == 0:
        print("  NOTE: no call rows with traces on: the gateway's trace write path is not in yet")
    verdict = "within" if worst < TARGET_ADDED_MS else "OVER"
    print(f"  worst added: {worst:+.3f} ms ({verdict} the {TARGET_ADDED_MS} ms target)")


if __name__ == "__main__":
    main()
