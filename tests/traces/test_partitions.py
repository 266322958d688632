"""Month partitions on PostgreSQL: made ahead idempotently, a next-month row goes in, and
retention drops whole expired months (and keeps the rest) before deleting row by row.

Runs `manage.py` in a subprocess against a fresh PostgreSQL database (as the billing
concurrency test does): the test process's own Django is on the SQLite test database.
"""

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support import database
from traces.partitions import month_of, next_month, partition_name

pytestmark = pytest.mark.scaled

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def pg(fresh_postgres_database, tmp_path):
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_", "PYTEST_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="inference_app.settings",
        DATABASE_URL=fresh_postgres_database,
        YARDSTICK_VAR_DIR=str(tmp_path),
        TRACE_RETENTION_DAYS="30",
    )

    def manage(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    manage("migrate", "-v", "0")
    return fresh_postgres_database, manage


def partitions(url: str, table: str) -> set[str]:
    rows = database.query(
        url,
        "SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = %s",
        (table,),
    )
    return {row["name"] for row in rows}


def add_calls(manage, rows: list[tuple[int, datetime, str]]) -> None:
    """(organization id, started_at, span id) each, with a body, through the ORM."""
    code = (
        "from datetime import datetime\n"
        "from traces.models import Call, CallBody\n"
        f"for org, at, span in {[(o, a.isoformat(), s) for o, a, s in rows]!r}:\n"
        "    at = datetime.fromisoformat(at)\n"
        "    Call.objects.create(started_at=at, project_id=org * 10, span_id=span,"
        " trace_id='a' * 32, organization_id=org, team='t', project='p', has_body=True)\n"
        "    CallBody.objects.create(started_at=at, project_id=org * 10, span_id=span)\n"
    )
    manage("shell", "-c", code)


def spans(url: str, table: str) -> set[str]:
    return {row["span_id"] for row in database.query(url, f"SELECT span_id FROM {table}")}


def test_ensure_is_idempotent_and_next_month_inserts(pg):
    url, manage = pg
    month = month_of(NOW)
    ahead = [month]
    for _ in range(3):
        ahead.append(next_month(ahead[-1]))
    for table in ("traces_call", "traces_call_body"):
        # The migration made this month and three ahead.
        assert {partition_name(table, m) for m in ahead} <= partitions(url, table)
    before = partitions(url, "traces_call")

    assert "0 partition(s) created" in manage("traces_jobs", "partitions")
    assert "2 partition(s) created" in manage("traces_jobs", "partitions", "--months-ahead", "4")
    assert "0 partition(s) created" in manage("traces_jobs", "partitions", "--months-ahead", "4")
    assert len(partitions(url, "traces_call")) == len(before) + 1

    first_of_next = next_month(month)
    at = datetime(first_of_next.year, first_of_next.month, 2, 9, 30, tzinfo=UTC)
    add_calls(manage, [(1, at, "00000000000000aa")])
    rows = database.query(
        url, f"SELECT span_id FROM {partition_name('traces_call', first_of_next)}"
    )
    assert [row["span_id"] for row in rows] == ["00000000000000aa"]
    assert spans(url, "traces_call_body") == {"00000000000000aa"}


def test_retention_drops_expired_months_and_keeps_the_rest(pg):
    url, manage = pg
    old = month_of(NOW - timedelta(days=400))
    old_at = datetime(old.year, old.month, 10, tzinfo=UTC)
    for table in ("traces_call", "traces_call_body"):
        # A month long gone, made by hand (the jobs only make months ahead).
        database.execute(
            url,
            f"CREATE TABLE {partition_name(table, old)} PARTITION OF {table}"
            f" FOR VALUES FROM ('{old.isoformat()}') TO ('{next_month(old).isoformat()}')",
        )
    recent_at = NOW - timedelta(minutes=5)
    add_calls(
        manage,
        [(1, old_at, "0000000000000001"), (2, old_at, "0000000000000002"),
         (1, recent_at, "0000000000000003"), (2, recent_at, "0000000000000004")],
    )  # fmt: skip
    # Organization 2 keeps calls 500 days: the old month stays, organization 1's row in it goes.
    manage("shell", "-c", "from traces.models import RetentionPolicy as R;"
           " R.objects.create(organization_id=2, days=500)")  # fmt: skip

    assert "1 call(s) deleted" in manage("traces_jobs", "retention")

    assert partition_name("traces_call", old) in partitions(url, "traces_call")
    assert spans(url, "traces_call") == {"0000000000000002", "0000000000000003", "0000000000000004"}
    assert spans(url, "traces_call_body") == spans(url, "traces_call")

    # Organization 2 down to 100 days: the whole month is past every policy and is dropped.
    manage("shell", "-c", "from traces.models import RetentionPolicy as R;"
           " R.objects.filter(organization_id=2).update(days=100)")  # fmt: skip
    before = partitions(url, "traces_call") | partitions(url, "traces_call_body")
    manage("traces_jobs", "retention")

    for table in ("traces_call", "traces_call_body"):
        assert partition_name(table, old) not in partitions(url, table)
        assert partition_name(table, month_of(NOW)) in partitions(url, table)
        assert not database.query(
            url, "SELECT 1 FROM pg_class WHERE relname = %s", (partition_name(table, old),)
        )  # dropped, not only detached
    after = partitions(url, "traces_call") | partitions(url, "traces_call_body")
    assert before - after == {
        partition_name("traces_call", old),
        partition_name("traces_call_body", old),
    }
    assert spans(url, "traces_call") == {"0000000000000003", "0000000000000004"}
    assert spans(url, "traces_call_body") == spans(url, "traces_call")


def test_a_busy_table_is_not_waited_for(pg):
    """A long transaction holding traces_call: retention gives up on the month quickly (writes
    queued behind its lock would stall settlements) and drops it on a later run."""
    import psycopg

    url, manage = pg
    old = month_of(NOW - timedelta(days=400))
    for table in ("traces_call", "traces_call_body"):
        database.execute(
            url,
            f"CREATE TABLE {partition_name(table, old)} PARTITION OF {table}"
            f" FOR VALUES FROM ('{old.isoformat()}') TO ('{next_month(old).isoformat()}')",
        )
    add_calls(manage, [(1, datetime(old.year, old.month, 3, tzinfo=UTC), "00000000000000bb")])
    with psycopg.connect(url) as holder:
        holder.execute("SELECT count(*) FROM traces_call")  # ACCESS SHARE, held until commit
        started = time.monotonic()
        manage("traces_jobs", "retention")
        assert time.monotonic() - started < 30
        assert partition_name("traces_call", old) in partitions(url, "traces_call")
    manage("traces_jobs", "retention")
    assert partition_name("traces_call", old) not in partitions(url, "traces_call")
    assert partition_name("traces_call_body", old) not in partitions(url, "traces_call_body")
    assert spans(url, "traces_call") == set()
