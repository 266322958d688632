"""Run every benchmark scenario against every target in one go and print the table.

    make bench                                  # the full run, 5-10 minutes
    .venv/bin/python -m bench.run --quick       # a smoke run, under 2 minutes
    .venv/bin/python -m bench.run --targets direct,ours-sqlite --rounds 1

Targets, all on 127.0.0.1: the fake engine called directly; our gateway (one daphne process,
auth + project + concurrency limit + quota + usage row) on SQLite, and on PostgreSQL + Redis
(a database created for the run and dropped after it); LiteLLM proxy (its own venv under
bench/, installed on first use) in front of the same fake engine. The server under test runs
pinned to CPU 1; the fake engine and this load generator share CPU 0.

The table goes to stdout and to bench/results/latest.md (with the raw figures in
latest.json); docs/benchmarks.md explains how to read it.
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

from bench import report, scenarios, targets

RESULTS = targets.ROOT / "bench" / "results"
ALL_TARGETS = [report.DIRECT, report.SQLITE, report.PG, report.LITELLM]


@dataclass(frozen=True)
class Plan:
    rounds: int
    duration: float  # seconds per (scenario, target, round)
    concurrencies: tuple = (1, 16, 64)
    stream_concurrencies: tuple = (1, 16)
    many: tuple = (100, 500, 1000)
    compare_runs: int = 10


FULL = Plan(rounds=3, duration=2.0)
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
    import daphne
    import django

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "django": django.get_version(),
        "daphne": daphne.__version__,
        "litellm": litellm_version,
        "pinning": (
            f"server under test on CPU {targets.SERVER_CPU}; fake engine + load generator on "
            f"CPU {targets.CLIENT_CPU} (taskset); PostgreSQL and Redis unpinned"
            if targets.pinning_enabled()
            else "no pinning (fewer than 2 cores or no taskset)"
        ),
    }


def start_targets(names: list[str], engine, engine_url: str, log_dir: Path, notes: list):
    started = {}
    if report.DIRECT in names:
        started[report.DIRECT] = targets.Target(report.DIRECT, engine_url, process=engine)
    for name, scaled in ((report.SQLITE, False), (report.PG, True)):
        if name in names:
            try:
                started[name] = targets.gateway_target(
                    name, engine_url, scaled=scaled, log_dir=log_dir
                )
            except Exception as exc:  # noqa: BLE001 - report and go on with the others
                notes.append(f"{name} did not start: {str(exc)[:400]}")
    if report.LITELLM in names:
        models = [targets.FAST_MODEL, targets.PACED_MODEL]
        try:
            started[report.LITELLM] = targets.litellm_target(engine_url, models, log_dir=log_dir)
        except Exception as exc:  # noqa: BLE001
            notes.append(f"litellm did not start: {str(exc)[:400]}")
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


async def run_scenarios(plan: Plan, live: dict, engine_root: str, notes: list) -> dict:
    results: dict = defaultdict(lambda: defaultdict(list))
    order = list(live)
    for round_no in range(plan.rounds):
        # Rotate the order each round so that drift (other load, warm caches) spreads evenly.
        turn = order[round_no % len(order) :] + order[: round_no % len(order)]
        for c in plan.concurrencies:
            for name in turn:
                figures = await _guarded(
                    f"non-stream c={c} {name}",
                    scenarios.requests_at(
                        live[name], concurrency=c, duration=plan.duration, stream=False
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
        for name in (report.SQLITE, report.PG):
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--targets", default=",".join(ALL_TARGETS))
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
    names = [n for n in args.targets.split(",") if n]
    unknown = set(names) - set(ALL_TARGETS)
    if unknown:
        parser.error(f"unknown targets: {', '.join(sorted(unknown))}")
    # `timeout` and CI send SIGTERM: turn it into SystemExit so every server is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if targets.pinning_enabled():
        os.sched_setaffinity(0, {int(targets.CLIENT_CPU)})

    started_at = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
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
        results = asyncio.run(run_scenarios(plan, live, engine_url.removesuffix("/v1"), notes))
    finally:
        for target in live.values():
            if target.name != report.DIRECT:
                target.stop()
        engine.stop()
    elapsed = time.perf_counter() - clock

    machine = machine_description()
    table = report.render_markdown(report.build_rows(results, plan))
    header = (
        f"Run {started_at}, {'quick' if args.quick else 'full'}: {plan.rounds} round(s) of "
        f"{plan.duration:g} s per scenario and target; took {elapsed:.0f} s.\n"
        f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory_gb']} GB; "
        f"Python {machine['python']}, Django {machine['django']}, daphne {machine['daphne']}, "
        f"LiteLLM {machine['litellm']}.\nPinning: {machine['pinning']}."
    )
    text = (
        header
        + "\n\n"
        + table
        + ("\n\nNotes:\n" + "\n".join(f"- {n}" for n in notes) if notes else "")
    )
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.md").write_text(text + "\n")
    raw = {f"{kind}:{n}": dict(by_target) for (kind, n), by_target in results.items()}
    (RESULTS / "latest.json").write_text(
        json.dumps(
            {"machine": machine, "plan": asdict(plan), "notes": notes, "results": raw}, indent=1
        )
    )


if __name__ == "__main__":
    main()
