"""Benchmark: the billing page and usage chart over one million usage rows.

    .venv/bin/python -m bench.billing_page                 # fresh PostgreSQL DB if reachable
    .venv/bin/python -m bench.billing_page --sqlite        # a fresh SQLite file instead
    .venv/bin/python -m bench.billing_page --rows 200000   # smaller

Fills UsageRecord with bulk_create in batches (90 days, three organizations, six models,
several projects), computes the daily rollups with the rollup task's service, then times
GET /billing/ and GET /billing/usage/ (30 days by model, 90 days by project) through Django's
test client, and the chart query alone (selectors.usage_by_day), median of several runs.
For contrast it also times the same 30-day aggregation straight over the raw rows.
Target: the page's queries under 200 ms.
"""

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta

MODELS = [
    ("deepseek-ai/DeepSeek-R1-0528", 1_350_000, 5_400_000),
    ("deepseek-ai/DeepSeek-V3-0324", 1_140_000, 2_750_000),
    ("meta-llama/Llama-3.1-8B-Instruct", 220_000, 220_000),
    ("meta-llama/Llama-3.3-70B-Instruct", 710_000, 710_000),
    ("meta-llama/Llama-4-Scout-17B-16E-Instruct", 170_000, 660_000),
    ("microsoft/Phi-4-mini-instruct", 80_000, 350_000),
]
PROJECTS = [
    ("research", "evals"),
    ("research", "agents"),
    ("product", "chatbot"),
    ("product", "search"),
    ("ops", "batch"),
]
DAYS = 90
BATCH = 10_000


def create_postgres_database() -> tuple[str, callable]:
    import psycopg

    server = "postgres://postgres@127.0.0.1:5432"
    name = f"yardstick_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop():
        with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return f"{server}/{name}", drop


def timed(fn, runs: int) -> tuple[float, object]:
    fn()  # warm-up (connection, caches, template compilation)
    samples = []
    result = None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples), result


def fill(rows: int, organizations: list, now: datetime) -> None:
    from billing.models import UsageRecord
    from billing.usage import usage_cost_micros

    rng = random.Random(42)
    weights = [0.7, 0.2, 0.1][: len(organizations)]
    start = now - timedelta(days=DAYS - 1)
    start = start.replace(hour=0, minute=0, second=0, microsecond=0)
    span = (now - start).total_seconds()
    made = 0
    while made < rows:
        batch = []
        for _ in range(min(BATCH, rows - made)):
            org = rng.choices(organizations, weights)[0]
            model, price_in, price_out = rng.choice(MODELS)
            team, project = rng.choice(PROJECTS)
            prompt, completion = rng.randint(20, 4000), rng.randint(1, 1500)
            created = start + timedelta(seconds=rng.random() * span)
            batch.append(
                UsageRecord(
                    request_id=f"bench-{made}",
                    organization_id=org.pk,
                    team=team,
                    project=project,
                    model=model,
                    prompt_tokens=prompt,
                    completion_tokens=completion,
                    input_price_micros=price_in,
                    output_price_micros=price_out,
                    cost_micros=usage_cost_micros(
                        prompt_tokens=prompt,
                        completion_tokens=completion,
                        input_price_micros=price_in,
                        output_price_micros=price_out,
                    ),
                    duration_ms=rng.randint(50, 5000),
                    created_at=created,
                    finished_at=created,
                )
            )
            made += 1
        UsageRecord.objects.bulk_create(batch)
        print(f"\r  {made:>9,} rows", end="", flush=True)
    print()


def fill_and_roll_up(rows: int, now: datetime):
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection

    from billing.models import Membership
    from billing.organizations import membership_set, organization_create
    from billing.rollups import usage_rollup_day

    call_command("migrate", verbosity=0, interactive=False)
    orgs = [
        organization_create(name=f"Bench {i}", slug=f"bench-{i}", plan_code="pro") for i in range(3)
    ]
    admin = get_user_model().objects.create_user(username="bench-admin", password="x" * 12)
    membership_set(organization=orgs[0], user=admin, role=Membership.Role.ADMIN)

    t0 = time.perf_counter()
    fill(rows, orgs, now)
    print(f"filled {rows:,} usage rows in {time.perf_counter() - t0:.1f} s")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")

    t0 = time.perf_counter()
    for back in range(1, DAYS):
        usage_rollup_day(day=now.date() - timedelta(days=back), now=now)
    rollup_s = time.perf_counter() - t0
    print(
        f"rolled up {DAYS - 1} finished days in {rollup_s:.1f} s"
        f" ({rollup_s / (DAYS - 1) * 1000:.0f} ms per day)"
    )
    return orgs, admin


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--sqlite", action="store_true", help="use a fresh SQLite file")
    parser.add_argument(
        "--existing",
        metavar="DATABASE_URL",
        help="time again against a database an earlier run filled and kept (--keep)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the filled database")
    args = parser.parse_args()

    var_dir = tempfile.mkdtemp(prefix="yardstick-bench-")
    drop = None
    if args.existing:
        database_url = args.existing
    elif args.sqlite:
        database_url = f"sqlite:///{var_dir}/bench.sqlite3"
    else:
        database_url, drop = create_postgres_database()
    os.environ.update(
        DJANGO_SETTINGS_MODULE="inference_app.settings",
        DATABASE_URL=database_url,
        YARDSTICK_VAR_DIR=var_dir,
    )
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.db.models import Count, Sum
    from django.test import Client

    from billing.models import Organization, UsageRecord
    from billing.selectors import usage_by_day

    try:
        print(f"database: {connection.vendor} ({database_url})")
        now = datetime.now(UTC)
        today = now.date()
        if args.existing:
            orgs = list(Organization.objects.filter(slug__startswith="bench-").order_by("slug"))
            admin = get_user_model().objects.get(username="bench-admin")
        else:
            orgs, admin = fill_and_roll_up(args.rows, now)

        own_rows = UsageRecord.objects.filter(organization=orgs[0]).count()
        print(
            f"{UsageRecord.objects.count():,} usage rows, {own_rows:,} for the page's organization"
        )

        client = Client()
        client.force_login(admin)
        results = []

        def page(url, params=None):
            def get():
                response = client.get(url, params or {})
                assert response.status_code == 200, response.status_code
                return response

            sql_times = []

            def measure(execute, sql, params, many, context):
                start = time.perf_counter()
                try:
                    return execute(sql, params, many, context)
                finally:
                    sql_times.append((time.perf_counter() - start) * 1000)

            with connection.execute_wrapper(measure):
                get()
            ms, _ = timed(get, args.runs)
            results.append((f"GET {url} {params or ''}", ms, len(sql_times), sum(sql_times)))

        page("/billing/")
        page("/billing/usage/")
        page(
            "/billing/usage/",
            {"group_by": "project", "start": (today - timedelta(days=DAYS - 1)).isoformat()},
        )

        start30 = today - timedelta(days=29)
        chart_ms, rows = timed(
            lambda: usage_by_day(organization_id=orgs[0].pk, start=start30, end=today), args.runs
        )
        results.append(
            (
                "chart query usage_by_day, 30 days by model (rollups + today raw)",
                chart_ms,
                None,
                None,
            )
        )

        def raw_30_days():
            return list(
                UsageRecord.objects.filter(organization=orgs[0], created_at__date__gte=start30)
                .values("model")
                .annotate(n=Count("id"), cost=Sum("cost_micros"))
            )

        raw_ms, _ = timed(raw_30_days, max(3, args.runs // 3))
        results.append(
            ("for contrast: the same 30 days aggregated from raw rows", raw_ms, None, None)
        )

        print(f"\nmedian of {args.runs} runs (after one warm-up):")
        for label, ms, n_queries, sql_ms in results:
            extra = (
                f"  [{n_queries} queries, {sql_ms:.1f} ms in SQL]" if n_queries is not None else ""
            )
            print(f"  {ms:8.1f} ms  {label}{extra}")
        print(f"chart rows: {len(rows)}")
        worst = max(ms for label, ms, *_ in results if label.startswith(("GET", "chart")))
        print(
            f"target: page and chart under 200 ms -> {'met' if worst < 200 else 'NOT met'} (worst {worst:.1f} ms)"
        )
    finally:
        connection.close()
        if args.keep:
            print(f"kept: --existing {database_url}")
        elif drop:
            drop()


if __name__ == "__main__":
    sys.exit(main())
