"""How close the gateway is to the floor of its stack, at c=1 only: the direct engine, the bare
relay (bench/relay_floor.py, raw ASGI + httpx) and our gateway on SQLite, under each server
(daphne, uvicorn, granian), side by side in one run. A short cut of bench.run, same pieces.

    .venv/bin/python -m bench.floor [--rounds 3] [--seconds 2] [--servers uvicorn,granian]

Prints the c=1 rows of issue #13's targets (added p50/p99 and TTFT over the same server's
floor, CPU per request against the floor's) and the figures behind them, medians over rounds.
Pinning as in bench.run (server on CPU 1; engine and load generator on 0).
"""

import argparse

from bench import report
from bench.run import Plan, execute


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--servers", default=",".join(report.SERVERS))
    args = parser.parse_args()
    servers = [s for s in args.servers.split(",") if s]
    names = [report.DIRECT]
    names += [report.FLOOR[s] for s in servers] + [report.OURS[s] for s in servers]
    plan = Plan(
        rounds=args.rounds,
        duration=args.seconds,
        concurrencies=(1,),
        stream_concurrencies=(1,),
        many=(),
        compare_runs=0,
    )
    results, notes, elapsed, _ = execute(plan, names)
    print(f"median of {args.rounds} rounds, c=1, {args.seconds:g} s each; took {elapsed:.0f} s")
    print(report.render_targets(report.target_rows(results, plan), plan))
    print()
    print(report.render_markdown(report.build_rows(results, plan), present=names))
    for note in report.saturation_notes(results) + notes:
        print(f"- {note}")


if __name__ == "__main__":
    main()
