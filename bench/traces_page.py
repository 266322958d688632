"""The Traces list over 1,000,000 calls on PostgreSQL: first page and filtered pages.

    .venv/bin/python -m bench.traces_page                 # create, fill, time, drop
    .venv/bin/python -m bench.traces_page --keep          # keep the database for the next run
    .venv/bin/python -m bench.traces_page --rows 200000

Creates a scratch database (`yardstick_bench_traces`, on BENCH_POSTGRES_URL or
127.0.0.1:5432), migrates it, makes month partitions back to the oldest row, and fills it with
one `INSERT ... SELECT generate_series` (calls spread over 90 days, newest first: three
projects of two organizations, five models, a few statuses, users and sources, latencies with a
long tail) plus bodies for one call in ten (`--bodies-every`); then ANALYZE. Each page is
fetched through the page's own selector, `traces.selectors.calls_page` (51 rows, keyset
order), timed as the median of several runs after a warm-up, with the indexes its plan used
(EXPLAIN ANALYZE of the exact SQL the selector ran). Target: under 200 ms each.
"""

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from datetime import timedelta

TARGET_MS = 200.0
DATABASE = "yardstick_bench_traces"
ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432")
MODELS = [
    "meta-llama/Llama-3.1-8B-Instruct",  # 50 %
    "Qwen/Qwen2.5-7B-Instruct",  # 25 %
    "microsoft/Phi-4-mini-instruct",  # 15 %
    "mistralai/Mistral-7B-Instruct-v0.3",  # 8 %
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",  # 2 %
]
SPREAD_DAYS = 90
BIG_PROJECT = 1  # 70 % of the rows

FILL_CALLS = """
INSERT INTO traces_call (
    started_at, project_id, span_id, trace_id, parent_span_id, request_id, organization_id,
    user_id, team, project, api_key_prefix, source, op_name, model, deployment, stream,
    finish_reason, session_id, pane, status, http_status, error_code, error_message,
    first_token_at, ended_at, duration_ms, ttft_ms, prompt_tokens, completion_tokens,
    tokens_counted_by_gateway, cost_micros, attributes, has_body)
SELECT
    t.started_at, t.project_id, lpad(to_hex(g), 16, '0'), md5(g::text), '',
    'chatcmpl-' || md5(g::text), CASE WHEN t.project_id = 3 THEN 2 ELSE 1 END,
    1 + (g * 31) %% 20, 'team-' || t.project_id, 'project-' || t.project_id, 'ys-abcd',
    CASE WHEN g %% 20 = 0 THEN 'compare' WHEN g %% 7 = 0 THEN 'playground' ELSE 'api' END,
    'chat.completions', t.model, t.model || '@engine-1', g %% 2 = 0,
    CASE WHEN t.status = 'ok' THEN 'stop' ELSE '' END, '', '', t.status,
    CASE WHEN t.status = 'error' THEN 502 ELSE 200 END,
    CASE WHEN t.status = 'error' THEN 'engine_error' ELSE '' END, '',
    t.started_at + make_interval(secs => t.duration_ms / 5000.0),
    t.started_at + make_interval(secs => t.duration_ms / 1000.0),
    t.duration_ms, t.duration_ms / 5, 20 + g %% 2000, 1 + g %% 500, false,
    (g %% 2500) * 3, '{"temperature": 0.7}'::jsonb, g %% %(every)s = 0
FROM generate_series(1::bigint, %(rows)s::bigint) AS g,
LATERAL (SELECT
    now() - make_interval(secs => (g - 1) * %(spread)s::float / %(rows)s) AS started_at,
    CASE WHEN g %% 10 < 7 THEN 1 WHEN g %% 10 < 9 THEN 2 ELSE 3 END AS project_id,
    (%(models)s::text[])[CASE
        WHEN (g * 7919) %% 100 < 50 THEN 1 WHEN (g * 7919) %% 100 < 75 THEN 2
        WHEN (g * 7919) %% 100 < 90 THEN 3 WHEN (g * 7919) %% 100 < 98 THEN 4 ELSE 5 END]
        AS model,
    CASE WHEN (g * 104729) %% 1000 < 20 THEN 'error' WHEN (g * 104729) %% 1000 < 30
        THEN 'cancelled' WHEN (g * 104729) %% 1000 < 32 THEN 'lost' ELSE 'ok' END AS status,
    (50 + power(random(), 4) * 30000)::int AS duration_ms
) AS t
"""

FILL_BODIES = """
INSERT INTO traces_call_body (started_at, project_id, span_id, inputs, output, search_text)
SELECT started_at, project_id, span_id,
    jsonb_build_object('messages', jsonb_build_array(jsonb_build_object(
        'role', 'user', 'content', 'Question ' || span_id || ' about ' || model))),
    jsonb_build_object('content', repeat('An answer of some length. ', 20),
        'finish_reason', 'stop'),
    lower('question ' || span_id || ' about ' || model || ' an answer of some length.')
FROM traces_call WHERE has_body
"""


def _setup_django(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("YARDSTICK_VAR_DIR", tempfile.mkdtemp(prefix="yardstick-bench-traces-"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "inference_app.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()


def _fill(rows: int, every: int) -> None:
    from django.db import connection
    from django.utils import timezone

    from traces.partitions import call_partitions_ensure

    oldest = timezone.now() - timedelta(days=SPREAD_DAYS + 1)
    call_partitions_ensure(today=oldest.date(), months_ahead=SPREAD_DAYS // 28 + 3)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            FILL_CALLS,
            {"rows": rows, "spread": SPREAD_DAYS * 86400, "models": MODELS, "every": every},
        )
        calls_s = time.perf_counter() - started
        cursor.execute(FILL_BODIES)
        cursor.execute("ANALYZE traces_call")
        cursor.execute("ANALYZE traces_call_body")
    print(
        f"filled {rows:,} calls in {calls_s:.0f} s, bodies and ANALYZE in"
        f" {time.perf_counter() - started - calls_s:.0f} s",
        flush=True,
    )


def _capture(run):
    """Run `run()` and return the (sql, params) of the statements it executed."""
    from django.db import connection

    statements = []

    def wrapper(execute, sql, params, many, context):
        statements.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        run()
    return statements


def _plan(sql: str, params) -> tuple[list[str], float]:
    """Indexes the plan scanned, and the server's own execution time (ms)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        import json

        plan = json.loads(plan)
    indexes = set()

    def walk(node):
        if "Index Name" in node:
            # Partition indexes are named after the partition; keep the kind.
            indexes.add(f"{node['Node Type']}: {node['Index Name']}")
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0]["Plan"])
    return sorted(indexes), plan[0]["Execution Time"]


def _scenarios():
    from django.utils import timezone

    from traces.selectors import CallFilters, calls_page

    now = timezone.now()
    week, month = now - timedelta(days=7), now - timedelta(days=30)
    first = calls_page(project_id=BIG_PROJECT, filters=CallFilters(since=week), cursor=None)
    deep_cursor = first.next_cursor
    for _ in range(19):  # page 21
        deep_cursor = calls_page(
            project_id=BIG_PROJECT, filters=CallFilters(since=week), cursor=deep_cursor
        ).next_cursor
    return [
        ("first page (last 7 days)", CallFilters(since=week), None),
        ("first page (last 30 days)", CallFilters(since=month), None),
        ("page 21 (keyset cursor)", CallFilters(since=week), deep_cursor),
        ("model + status=error (7 d)", CallFilters(since=week, model=MODELS[1], status="error"), None),
        ("rare model (2 %) + status=error (30 d)",
         CallFilters(since=month, model=MODELS[4], status="error"), None),
        ("min latency 20 s (~10 %, 7 d)", CallFilters(since=week, min_latency_ms=20_000), None),
        ("min latency 29.5 s (~0.3 %, 7 d)", CallFilters(since=week, min_latency_ms=29_500), None),
        ("user (7 d)", CallFilters(since=week, user_id=7), None),
        ("source=compare (7 d)", CallFilters(since=week, source="compare"), None),
        ("min cost (7 d)", CallFilters(since=week, min_cost_micros=7_400), None),
        ("text search, found in 1 body in 10 (7 d)", CallFilters(since=week, q="llama"), None),
        ("text search, no match (7 d, worst case)", CallFilters(since=week, q="zebra"), None),
        ("text search, no match (30 d, worst case)", CallFilters(since=month, q="zebra"), None),
        ("min latency 29.5 s (30 d)", CallFilters(since=month, min_latency_ms=29_500), None),
    ], calls_page  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument(
        "--bodies-every", type=int, default=10, help="one call in N has a body (1: every call)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the database (and reuse it)")
    args = parser.parse_args()

    import psycopg

    with psycopg.connect(ADMIN_URL + "/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DATABASE}"')
    try:
        _setup_django(f"{ADMIN_URL}/{DATABASE}")
        from django.core.management import call_command
        from django.db import connection

        call_command("migrate", verbosity=0)
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM traces_call")
            present = cursor.fetchone()[0]
            cursor.execute("SELECT count(*) FROM traces_call_body")
            bodies = cursor.fetchone()[0]
        if present != args.rows or bodies != args.rows // args.bodies_every:
            if present:
                with connection.cursor() as cursor:
                    cursor.execute("TRUNCATE traces_call, traces_call_body")
            _fill(args.rows, args.bodies_every)
        else:
            print(f"reusing {present:,} calls in {DATABASE}")

        scenarios, calls_page = _scenarios()
        print(
            f"\nTraces list over {args.rows:,} calls ({args.rows // args.bodies_every:,} with a"
            f" body) on PostgreSQL, project {BIG_PROJECT} (70 % of them), calls_page: median of"
            f" {args.runs} runs, 51 rows fetched"
        )
        worst = 0.0
        for label, filters, cursor in scenarios:

            def run(filters=filters, cursor=cursor):
                return calls_page(project_id=BIG_PROJECT, filters=filters, cursor=cursor)

            statements = _capture(run)  # also the warm-up
            times = []
            for _ in range(args.runs):
                started = time.perf_counter()
                page = run()
                times.append(1000 * (time.perf_counter() - started))
            median = statistics.median(times)
            worst = max(worst, median)
            indexes, server_ms = _plan(*statements[-1])
            kinds = sorted({_index_columns(name) for name in indexes}) or ["sequential scan"]
            print(
                f"  {label:40} {median:7.1f} ms  ({len(page.calls)} rows; server"
                f" {server_ms:.1f} ms; {'; '.join(kinds)})",
                flush=True,
            )
        verdict = "within" if worst < TARGET_MS else "OVER"
        print(f"  slowest: {worst:.1f} ms ({verdict} the {TARGET_MS:.0f} ms target)")
    finally:
        if not args.keep:
            from django.db import connections

            connections.close_all()
            with psycopg.connect(ADMIN_URL + "/postgres", autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')


def _index_columns(scan: str) -> str:
    """'Index Scan: traces_call_y2026m11_project_id_model_started_at_idx' -> 'Index Scan:
    project_id_model_started_at' (a partition's index is named after the partition)."""
    kind, _, name = scan.partition(": ")
    name = re.sub(r"^traces_call(_body)?_y\d{4}m\d{2}_", "", name).removesuffix("_idx")
    return f"{kind}: {name}"


if __name__ == "__main__":
    sys.exit(main())
