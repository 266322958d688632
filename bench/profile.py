"""Profile the gateway's hot path: py-spy samples one daphne process while the load generator runs.

    .venv/bin/python -m bench.profile                     # non-streaming, c=1, SQLite, 8 s
    .venv/bin/python -m bench.profile --stream --concurrency 16 --scaled --seconds 10
    .venv/bin/python -m bench.profile --server uvicorn [--floor]   # the API plane (or the relay
                                                                  # floor) under uvicorn/granian

Starts the fake engine and a seeded gateway (as bench.run does), records with
`py-spy record --gil` (only samples holding the GIL, i.e. Python CPU time; `--wall` samples
every thread, waiting ones too), and prints:
the gateway's CPU milliseconds per request, named buckets of the hot path (share of CPU
samples, a stack counted in every bucket it passes through), the top project functions and
the top self-time frames. The raw stacks are kept in bench/results/profile-*.txt
(collapsed format, for flamegraph tools).
"""

import argparse
import asyncio
import collections
import os
import shutil
import subprocess
import sys
import time

from bench import targets
from bench.loadgen import chat_body, run_load

# Named parts of the request path: label -> substrings of a frame ("function (file)").
BUCKETS = [
    ("Django request handling (middleware + view adapters)", ["get_response_async"]),
    ("sync middleware thread hop (asgiref SyncToAsync/AsyncToSync)", ["MiddlewareMixin.__call__"]),
    ("caller: API key + project (resolve_api_caller)", ["resolve_api_caller"]),
    (
        "routing (get_route, candidates, health marks)",
        ["get_route", "record_success", "candidates"],
    ),
    ("quota: reserve_credits", ["reserve_credits"]),
    ("usage: settle_usage (row + charge + release)", ["settle_usage"]),
    ("release_reservation", ["release_reservation"]),
    ("concurrency slots (acquire/release)", ["acquire_slots", "Lease.release"]),
    ("engine client (httpx request/stream)", ["open_chat_completion", "read_json", "iter_events"]),
    ("SSE serialisation in the view (_sse_events)", ["_sse_events"]),
    ("database connection open/close", ["get_new_connection", "BaseDatabaseWrapper.close"]),
    ("SQL compilation (Django ORM)", ["SQLCompiler.as_sql", "SQLCompiler.pre_sql_setup"]),
    ("SQL execution (driver)", ["CursorWrapper._execute"]),
    ("thread start (per-request executors)", ["Thread.start"]),
    ("JSON encode/decode", ["json/encoder.py", "json/decoder.py", "JSONEncoder", "JSONDecoder"]),
]
PROJECT_DIRS = ("inference_app/", "billing/", "playground/")
# Self time grouped by where the leaf frame lives (first match wins).
PACKAGES = [
    ("Django ORM (django/db)", "django/db/"),
    ("Django other", "django/"),
    ("asgiref (sync/async bridges)", "asgiref/"),
    ("daphne + Twisted (HTTP server)", ("daphne/", "twisted/")),
    ("httpx/httpcore/h11 (engine client)", ("httpx/", "httpcore/", "h11/")),
    ("sqlite3/psycopg/redis drivers", ("sqlite3/", "psycopg/", "redis/")),
    ("pydantic", "pydantic"),
    ("asyncio + threading + concurrent", ("asyncio/", "threading.py", "concurrent/")),
    ("project code", PROJECT_DIRS),
]


def _frame_name(frame: str) -> str:
    """'func (path/to/file.py:12)' -> 'func (path/to/file.py)'."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0]})" if where else name


def _tuple(where) -> tuple:
    return where if isinstance(where, tuple) else (where,)


def analyse(raw_path: str, top: int = 15, wall_ms_per_sample: float | None = None) -> str:
    """The report; with `wall_ms_per_sample` (wall mode: ms of wall time one sample stands for,
    per request) the buckets are in milliseconds of wall time per request instead of shares."""
    stacks = []
    for line in open(raw_path, errors="replace"):
        stack, _, count = line.rstrip().rpartition(" ")
        # py-spy now and then writes a frame it could not read whole: skip that sample.
        if stack and count.isdigit():
            stacks.append(([_frame_name(f) for f in stack.split(";")], int(count)))
    total = sum(n for _, n in stacks) or 1
    if wall_ms_per_sample is not None:
        lines = [f"{total} samples of all threads, idle ones included (wall time)"]
        lines.append("\nhot path buckets (ms of wall time per request, waits included):")
    else:
        lines = [f"{total} samples with the GIL held"]
        lines.append("\nhot path buckets (% of CPU samples; overlapping):")
    for label, needles in BUCKETS:
        n = sum(c for frames, c in stacks if any(x in f for f in frames for x in needles))
        if wall_ms_per_sample is not None:
            lines.append(f"  {n * wall_ms_per_sample:6.2f} ms  {label}")
        else:
            lines.append(f"  {100 * n / total:5.1f}%  {label}")
    inclusive: collections.Counter = collections.Counter()
    own: collections.Counter = collections.Counter()
    for frames, count in stacks:
        for frame in set(frames):
            if any(d in frame for d in PROJECT_DIRS) and ".venv" not in frame:
                inclusive[frame] += count
        own[frames[-1]] += count
    lines.append("\nself time by package:")
    by_package: collections.Counter = collections.Counter()
    for frames, count in stacks:
        leaf = frames[-1]
        label = next(
            (name for name, where in PACKAGES if any(w in leaf for w in _tuple(where))), "other"
        )
        by_package[label] += count
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in by_package.most_common()]
    lines.append("\ntop project functions (inclusive):")
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in inclusive.most_common(top)]
    lines.append("\ntop self time:")
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(top)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--scaled", action="store_true", help="PostgreSQL + Redis")
    parser.add_argument("--server", choices=targets.SERVERS, default="daphne")
    parser.add_argument(
        "--floor", action="store_true", help="profile the bare relay floor instead of the gateway"
    )
    parser.add_argument(
        "--wall",
        action="store_true",
        help="sample every thread, waiting ones too (wall time: lock and I/O waits show up)",
    )
    args = parser.parse_args()
    py_spy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    if not os.path.exists(py_spy):
        sys.exit("py-spy is missing: .venv/bin/pip install py-spy (it is in the test extra)")
    if targets.pinning_enabled():
        os.sched_setaffinity(0, {int(targets.CLIENT_CPU)})
    results = targets.ROOT / "bench" / "results"
    log_dir = results / "logs" / ("profile-" + time.strftime("%Y%m%d-%H%M%S"))
    log_dir.mkdir(parents=True, exist_ok=True)
    what = "floor" if args.floor else "ours"
    raw = results / (
        f"profile-{what}-{args.server}-{'stream' if args.stream else 'plain'}"
        f"-c{args.concurrency}.txt"
    )
    engine, engine_url = targets.start_fake_engine(log_dir)
    gateway = None
    try:
        if args.floor:
            gateway = targets.relay_target(
                f"floor-{args.server}", engine_url, server=args.server, log_dir=log_dir
            )
        else:
            gateway = targets.gateway_target(
                "ours-pg" if args.scaled else "ours-sqlite",
                engine_url,
                scaled=args.scaled,
                log_dir=log_dir,
                server=args.server,
            )
        body = chat_body(stream=args.stream, max_tokens=16, model=targets.FAST_MODEL)

        def load():
            return run_load(
                url=gateway.chat_url,
                concurrency=args.concurrency,
                duration=args.seconds,
                stream=args.stream,
                body=body,
                headers=gateway.headers,
            )

        asyncio.run(load())  # warm-up: caches, connections, JIT-less Python still likes it
        spy = subprocess.Popen(
            [
                py_spy,
                "record",
                "--pid",
                str(gateway.process.pid),
                "--subprocesses",  # granian serves from a worker child
                *(["--idle", "--threads"] if args.wall else ["--gil"]),
                "--rate",
                "500",
                "--format",
                "raw",
                "--nonblocking",
                "--output",
                str(raw),
                "--duration",
                str(int(args.seconds + 1)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(0.5)
        cpu_before = gateway.process.cpu_seconds()
        result = asyncio.run(load())
        cpu = gateway.process.cpu_seconds() - cpu_before
        spy.wait(timeout=args.seconds + 30)
    finally:
        if gateway is not None:
            gateway.stop()
        engine.stop()
    summary = result.summary()
    done = max(1, summary["requests"] - summary["errors"])
    print(
        f"{'streaming' if args.stream else 'non-streaming'} c={args.concurrency} "
        f"{what} under {args.server}"
        f"{'' if args.floor else ', PostgreSQL+Redis' if args.scaled else ', SQLite'}: "
        f"{summary['rps']} req/s, "
        f"p50 {summary['latency_p50_ms']} ms, errors {summary['errors']}; "
        f"server CPU {1000 * cpu / done:.2f} ms per request"
    )
    # py-spy samples at 500 Hz: one sample of one thread stands for 2 ms of that thread's time.
    print(analyse(str(raw), wall_ms_per_sample=2.0 / done if args.wall else None))
    print(f"\nraw stacks: {raw}")


if __name__ == "__main__":
    main()
