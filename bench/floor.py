"""How close the gateway is to the floor of its stack: direct engine, a bare daphne + httpx
relay (bench/relay_floor.py), and our gateway on SQLite, side by side in one run.

    .venv/bin/python -m bench.floor [--rounds 3] [--seconds 2]

Prints, per target, the median over rounds of: non-streaming c=1 latency p50/p99 and what it
adds over direct, time to first token (streaming c=1) and what it adds, and the server's CPU
time per request. Pinning as in bench.run (server on CPU 1; engine and load generator on 0).
"""

import argparse
import asyncio
import statistics
import tempfile
from pathlib import Path

from bench import targets
from bench.scenarios import requests_at


def start_relay(engine_url: str, log_dir: Path) -> targets.Target:
    port = targets.free_port()
    process = targets.start_process(
        "relay-floor",
        targets.daphne_argv(port, "bench.relay_floor:app"),
        env={"RELAY_ENGINE_URL": engine_url},
        cpu=targets.SERVER_CPU,
        log_dir=log_dir,
    )
    targets.wait_ready(process, f"http://127.0.0.1:{port}/health")
    return targets.Target("relay-floor", f"http://127.0.0.1:{port}/v1", process=process)


async def measure(live: list[targets.Target], rounds: int, seconds: float) -> dict:
    figures: dict = {t.name: {} for t in live}
    for round_index in range(rounds):
        order = live[round_index % len(live) :] + live[: round_index % len(live)]
        for target in order:
            plain = await requests_at(target, concurrency=1, duration=seconds, stream=False)
            stream = await requests_at(
                target, concurrency=1, duration=seconds, stream=True, max_tokens=64
            )
            row = {
                "p50 ms": plain["latency_p50_ms"],
                "p99 ms": plain["latency_p99_ms"],
                "TTFT p50 ms": stream["ttft_p50_ms"],
                "CPU ms/request": plain.get("server_cpu_ms_per_request"),
                "errors": plain["errors"] + stream["errors"],
            }
            for key, value in row.items():
                figures[target.name].setdefault(key, []).append(value)
    return {
        name: {
            key: statistics.median(v for v in values if v is not None)
            if any(v is not None for v in values)
            else None
            for key, values in row.items()
        }
        for name, row in figures.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    log_dir = Path(tempfile.mkdtemp(prefix="yardstick-floor-"))
    engine, engine_url = targets.start_fake_engine(log_dir)
    live = [targets.Target("direct", engine_url, process=engine)]
    try:
        live.append(start_relay(engine_url, log_dir))
        live.append(
            targets.gateway_target("ours-sqlite", engine_url, scaled=False, log_dir=log_dir)
        )
        result = asyncio.run(measure(live, args.rounds, args.seconds))
    finally:
        for target in live[1:]:
            target.stop()
        engine.stop()
    direct = result["direct"]
    print(f"median of {args.rounds} rounds, c=1, {args.seconds} s each")
    print(
        "| target | p50 ms | p99 ms | added p50 | added p99 | TTFT p50 ms | TTFT added | CPU ms/request | errors |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, row in result.items():
        added = [
            row[k] - direct[k] if name != "direct" else None
            for k in ("p50 ms", "p99 ms", "TTFT p50 ms")
        ]
        cells = [
            row["p50 ms"],
            row["p99 ms"],
            added[0],
            added[1],
            row["TTFT p50 ms"],
            added[2],
            row["CPU ms/request"],
            row["errors"],
        ]
        print(
            f"| {name} | "
            + " | ".join(
                "—" if c is None else f"{c:.2f}" if isinstance(c, float) else str(c) for c in cells
            )
            + " |"
        )


if __name__ == "__main__":
    main()
