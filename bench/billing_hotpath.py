"""Micro-benchmark of billing's per-request hot path: reserve_credits + settle_usage.

Runs N reserve+settle cycles for a Pro and a Free organization on a fresh database (a new
SQLite file, and a new PostgreSQL database) and prints the median µs per call and the SQL
statements per call. Each backend runs in its own process, because settings read
DATABASE_URL at import.

    .venv/bin/python -m bench.billing_hotpath              # both backends, N=500
    .venv/bin/python -m bench.billing_hotpath --db sqlite -n 200
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

POSTGRES_ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"
BATCH_SIZE = 20  # settle_batch: µs and statements per report, settled 20 at a time


def _run_backend(database_url: str, n: int) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "inference_app.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from billing.organizations import organization_create
    from billing.quota import reserve_credits
    from billing.usage import UsageReport, settle_usage, settle_usage_batch

    call_command("migrate", verbosity=0)

    statements = []

    def count(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    def report(org, request_id):
        now = timezone.now()
        return UsageReport(
            request_id=request_id,
            organization_id=org.pk,
            user_id=None,
            api_key_prefix="ys-bench",
            team="team-a",
            project="proj-a",
            model="bench-model",
            deployment="",
            source="api",
            status="ok",
            http_status=200,
            error_code="",
            prompt_tokens=100,
            completion_tokens=50,
            tokens_counted_by_gateway=False,
            time_to_first_token_ms=10,
            duration_ms=20,
            input_price_micros=200_000,
            output_price_micros=800_000,
            created_at=now,
            finished_at=now,
        )

    backend = connection.vendor
    for plan_code in ("pro", "free"):
        org = organization_create(
            name=f"Bench {plan_code}",
            slug=f"bench-{plan_code}-{uuid.uuid4().hex[:6]}",
            plan_code=plan_code,
        )
        timings = {"reserve": [], "settle": [], "settle_batch": []}
        counts = {"reserve": [], "settle": [], "settle_batch": []}
        for i in range(n + 20):  # the first 20 warm up caches and connections
            request_id = f"bench-{uuid.uuid4().hex}"
            statements.clear()
            with connection.execute_wrapper(count):
                t0 = time.perf_counter_ns()
                reserve_credits(organization_id=org.pk, request_id=request_id, amount_micros=1000)
                t1 = time.perf_counter_ns()
                reserved = len(statements)
                settle_usage(report(org, request_id))
                t2 = time.perf_counter_ns()
            if i >= 20:
                timings["reserve"].append((t1 - t0) / 1000)
                timings["settle"].append((t2 - t1) / 1000)
                counts["reserve"].append(reserved)
                counts["settle"].append(len(statements) - reserved)
        # The gateway's background lane settles what finished within a short window at once.
        for _ in range(max(1, n // BATCH_SIZE)):
            batch = [f"bench-{uuid.uuid4().hex}" for _ in range(BATCH_SIZE)]
            for request_id in batch:
                reserve_credits(organization_id=org.pk, request_id=request_id, amount_micros=1000)
            statements.clear()
            with connection.execute_wrapper(count):
                t0 = time.perf_counter_ns()
                settle_usage_batch([report(org, request_id) for request_id in batch])
                t1 = time.perf_counter_ns()
            timings["settle_batch"].append((t1 - t0) / 1000 / BATCH_SIZE)
            counts["settle_batch"].append(len(statements) / BATCH_SIZE)
        for call in ("reserve", "settle", "settle_batch"):
            print(
                f"{backend:10} {plan_code:5} {call:12} median {statistics.median(timings[call]):8.0f} µs"
                f"  p90 {statistics.quantiles(timings[call], n=10)[-1]:8.0f} µs"
                f"  statements/call {statistics.mean(counts[call]):5.2f}",
                flush=True,
            )
    connection.close()


def _sqlite(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        _child(f"sqlite:///{Path(tmp) / 'hotpath.sqlite3'}", n)


def _postgres(n: int) -> None:
    import psycopg

    name = f"yardstick_hotpath_{os.getpid()}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        _child(f"postgres://postgres@127.0.0.1:5432/{name}", n)
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _child(database_url: str, n: int) -> None:
    subprocess.run(
        [sys.executable, "-m", "bench.billing_hotpath", "--child", database_url, "-n", str(n)],
        check=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("-n", type=int, default=500, help="reserve+settle cycles per plan")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _run_backend(args.child, args.n)
        return
    if args.db in ("sqlite", "both"):
        _sqlite(args.n)
    if args.db in ("postgres", "both"):
        _postgres(args.n)


if __name__ == "__main__":
    main()
