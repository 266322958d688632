"""Run every benchmark scenario against every target in one go and print the tables.

    make bench                                  # the full run, about 12 minutes
    .venv/bin/python -m bench.run --quick       # a smoke run, about 4 minutes
    .venv/bin/python -m bench.run --targets direct,floor-uvicorn,ours-uvicorn --rounds 1

Targets, all on 127.0.0.1: the fake engine called directly; the bare relay floor
(bench/relay_floor.py: raw ASGI + httpx, no gateway work) under daphne, uvicorn (uvloop +
httptools) and granian; our gateway on SQLite (key, project, limits, quota, usage rows, traces)
under each server: daphne runs the whole product (inference_app.asgi), uvicorn and granian the
API plane on its own (inference_app.api_asgi); our gateway on PostgreSQL + Redis under uvicorn
(a database created for the run and dropped after it); LiteLLM proxy (its own venv under bench/,
installed on first use) in front of the same fake engine. The server under test runs pinned to
CPU 1 (with its children: granian's worker); the fake engine and this load generator (aiohttp on
uvloop) share CPU 0.

The tables go to stdout and to bench/results/latest.md (with the raw figures in latest.json);
docs/benchmarks.md explains how to read them.
"""

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import uvloop

from bench import report, scenarios, targets

RESULTS = targets.ROOT / "bench" / "results"
ALL_TARGETS = [name for name, _ in report.COLUMNS]


@dataclass(frozen=True)
class Plan:
    rounds: int
    duration: float  # seconds per (scenario, target, round)
    concurrencies: tuple = (1, 16, 64)
    stream_concurrencies: tuple = (1, 16)
    many: tuple = (100, 500, 1000)
    compare_runs: int = 10


FULL = Plan(rounds=3, duration=2.0, many=(1000,))
QUICK = Plan(rounds=1, duration=1.5, many=(100,), compare_runs=3)


def machine_description() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    except OSError:
        mem_kb = 0
    litellm_version = "not installed"
    litellm_python = targets.LITELLM_VENV / "bin" / "python"
    if litellm_python.exists():
        litellm_version = subprocess.run(
            [
                str(litellm_python),
                "-c",
                "import importlib.metadata as m; print(m.version('litellm'))",
            ],
            capture_output=True,
            text=True,
        ).stdout.strip()
    import aiohttp
    import daphne
    import django
    import granian
    import uvicorn

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "django": django.get_version(),
        "daphne": daphne.__version__,
        "uvicorn": uvicorn.__version__,
        "granian": granian.__version__,
        "aiohttp": aiohttp.__version__,
        "litellm": litellm_version,
        "pinning": (
            f"server under test (with its child processes) on CPU {targets.SERVER_CPU}; "
            f"fake engine + load generator on "
            f"CPU {targets.CLIENT_CPU} (taskset); PostgreSQL and Redis unpinned"
            if targets.pinning_enabled()
            else "no pinning (fewer than 2 cores or no taskset)"
        ),
    }


def start_targets(names: list[str], engine, engine_url: str, log_dir: Path, notes: list):
    started = {}
    for name in names:
        server = report.server_of(name)
        try:
            if name == report.DIRECT:
                started[name] = targets.Target(name, engine_url, process=engine)
            elif name == report.LITELLM:
                models = [targets.FAST_MODEL, targets.PACED_MODEL]
                started[name] = targets.litellm_target(engine_url, models, log_dir=log_dir)
            elif name.startswith("floor-"):
                started[name] = targets.relay_target(
                    name, engine_url, server=server, log_dir=log_dir
                )
            else:
                started[name] = targets.gateway_target(
                    name, engine_url, scaled=name == report.PG, log_dir=log_dir, server=server
                )
            _say(f"started {name}")
        except Exception as exc:  # noqa: BLE001 - report and go on with the others
            notes.append(f"{name} did not start: {str(exc)[:400]}")
            _say(f"{name} did not start: {exc}")
    targets.drop_templates()
    return started


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def _guarded(label: str, coro, timeout: float, notes: list) -> dict | None:
    """One scenario on one target, bounded in time; a failure becomes a note, not a crash."""
    try:
        return await asyncio.wait_for(coro, timeout)
    except Exception as exc:  # noqa: BLE001 - including TimeoutError
        notes.append(f"{label} failed: {exc!r}"[:300])
        _say(f"{label} FAILED: {exc!r}")
        return None


async def run_scenarios(
    plan: Plan, live: dict, engine_root: str, notes: list, engine: targets.Process | None = None
) -> dict:
    results: dict = defaultdict(lambda: defaultdict(list))
    order = list(live)
    if plan.rounds:
        # One warm-up pass per target before the rounds: first connections, lazy imports, caches.
        for name in order:
            for stream in (False, True):
                await _guarded(
                    f"warm-up {name}",
                    scenarios.requests_at(
                        live[name], concurrency=4, duration=0.5, stream=stream, max_tokens=16
                    ),
                    60,
                    notes,
                )
    for round_no in range(plan.rounds):
        # Rotate the order each round so that drift (other load, warm caches) spreads evenly.
        turn = order[round_no % len(order) :] + order[: round_no % len(order)]
        for c in plan.concurrencies:
            for name in turn:
                figures = await _guarded(
                    f"non-stream c={c} {name}",
                    scenarios.requests_at(
                        live[name],
                        concurrency=c,
                        duration=plan.duration,
                        stream=False,
                        engine=engine,
                    ),
                    plan.duration + 60,
                    notes,
                )
                results[("plain", c)][name].append(figures)
                _say(f"round {round_no + 1} non-stream c={c} {name}: {scenarios.dumps(figures)}")
        for c in plan.stream_concurrencies:
            for name in turn:
                figures = await _guarded(
                    f"stream c={c} {name}",
                    scenarios.requests_at(
                        live[name],
                        concurrency=c,
                        duration=plan.duration,
                        stream=True,
                        max_tokens=64,
                        engine=engine,
                    ),
                    plan.duration + 60,
                    notes,
                )
                results[("stream", c)][name].append(figures)
                _say(f"round {round_no + 1} stream c={c} {name}: {scenarios.dumps(figures)}")
    for n in plan.many:
        for name in order:
            target = live[name]
            ramp_timeout = 30 + n * 0.09
            figures = await _guarded(
                f"{n} streams {name}",
                scenarios.many_streams(
                    target,
                    streams=n,
                    engine_root=engine_root,
                    server=target.process,
                    ramp_timeout=ramp_timeout,
                ),
                ramp_timeout + 120,
                notes,
            )
            results[("many", n)][name].append(figures)
            _say(f"{n} streams {name}: {scenarios.dumps(figures)}")
    if plan.compare_runs:
        for name in (report.SQLITE,):  # the Playground websocket is served by daphne only
            if name not in live:
                continue
            figures = await _guarded(
                f"compare {name}",
                scenarios.compare_fanout(
                    live[name],
                    models=[m for m in live[name].seed["models"] if m != targets.PACED_MODEL][:6],
                    runs=plan.compare_runs,
                ),
                60 + 10 * plan.compare_runs,
                notes,
            )
            results[("compare", 6)][name].append(figures)
            _say(f"compare {name}: {scenarios.dumps(figures)}")
    return results


def execute(plan: Plan, names: list[str]) -> tuple[dict, list[str], float, dict]:
    """Start the targets, run the plan, stop everything: (results, notes, seconds, machine)."""
    # `timeout` and CI send SIGTERM: turn it into SystemExit so every server is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if targets.pinning_enabled():
        os.sched_setaffinity(0, {int(targets.CLIENT_CPU)})
    log_dir = RESULTS / "logs" / time.strftime("%Y%m%d-%H%M%S")
    log_dir.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    clock = time.perf_counter()
    if report.LITELLM in names:
        targets.ensure_litellm()
    engine, engine_url = targets.start_fake_engine(log_dir)
    live = {}
    try:
        live = start_targets(names, engine, engine_url, log_dir, notes)
        _say(f"targets up: {', '.join(live)}")
        results = uvloop.run(
            run_scenarios(plan, live, engine_url.removesuffix("/v1"), notes, engine=engine)
        )
    finally:
        for target in live.values():
            if target.name != report.DIRECT:
                target.stop()
        engine.stop()
        targets.drop_templates()
    return results, notes, time.perf_counter() - clock, machine_description()


def render(results: dict, plan: Plan, names: list[str], notes: list[str]) -> str:
    """The run's tables: issue #13's targets, the fastest server, then every figure."""
    parts = []
    rows = report.target_rows(results, plan)
    if rows:
        parts.append(
            "Targets of issue #13 (each gateway against its own server's relay floor and LiteLLM,"
            " same rounds; medians over rounds):\n\n" + report.render_targets(rows, plan)
        )
    fastest = report.fastest(results, [report.OURS[s] for s in report.SERVERS], "Ours")
    fastest += report.fastest(results, [report.FLOOR[s] for s in report.SERVERS], "Floor")
    if fastest:
        parts.append("Fastest server:\n" + "\n".join(f"- {line}" for line in fastest))
    generator = report.generator_summary(results)
    if generator:
        parts.append(
            "Load generator CPU share of its core (highest over targets, per scenario): "
            + generator
        )
    parts.append(report.render_markdown(report.build_rows(results, plan), present=names))
    notes = report.saturation_notes(results) + notes
    if notes:
        parts.append("Notes:\n" + "\n".join(f"- {n}" for n in notes))
    return "\n\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument(
        "--targets", default=",".join(ALL_TARGETS), help=f"any of {','.join(ALL_TARGETS)}"
    )
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--duration", type=float)
    parser.add_argument(
        "--many", help="stream counts for the many-streams scenario, e.g. 1000 (0: skip it)"
    )
    parser.add_argument(
        "--skip-requests", action="store_true", help="skip the request-rate scenarios"
    )
    parser.add_argument("--compare-runs", type=int, help="0 skips the compare scenario")
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    changes = {
        "rounds": args.rounds,
        "duration": args.duration,
        "compare_runs": args.compare_runs,
        "many": tuple(int(n) for n in args.many.split(",") if int(n)) if args.many else None,
    }
    if args.skip_requests:
        changes.update(rounds=0)
    plan = Plan(**{**asdict(plan), **{k: v for k, v in changes.items() if v is not None}})
    names = [report.ALIASES.get(n, n) for n in args.targets.split(",") if n]
    unknown = set(names) - set(ALL_TARGETS)
    if unknown:
        parser.error(f"unknown targets: {', '.join(sorted(unknown))}")

    started_at = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    results, notes, elapsed, machine = execute(plan, names)
    header = (
        f"Run {started_at}, {'quick' if args.quick else 'full'}: {plan.rounds} round(s) of "
        f"{plan.duration:g} s per scenario and target; took {elapsed:.0f} s.\n"
        f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory_gb']} GB; "
        f"Python {machine['python']}, Django {machine['django']}, daphne {machine['daphne']}, "
        f"uvicorn {machine['uvicorn']}, granian {machine['granian']}, "
        f"LiteLLM {machine['litellm']}; load generator aiohttp {machine['aiohttp']} on uvloop."
        f"\nPinning: {machine['pinning']}."
    )
    text = header + "\n\n" + render(results, plan, names, notes)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.md").write_text(text + "\n")
    raw = {f"{kind}:{n}": dict(by_target) for (kind, n), by_target in results.items()}
    (RESULTS / "latest.json").write_text(
        json.dumps(
            {
                "machine": machine,
                "plan": asdict(plan),
                "elapsed_seconds": round(elapsed),
                "notes": notes,
                "results": raw,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
