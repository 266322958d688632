"""Month partitions of the calls tables on PostgreSQL (SQLite keeps plain tables).

Partitions are created ahead (`call_partitions_ensure`, daily by beat and once per process per
month before the first write), never a DEFAULT partition: one would hold rows of a month not
yet created and block creating it. Retention drops whole months (retention.py).
"""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime

from django.db import connection

PARTITIONED_TABLES = ("traces_call", "traces_call_body")


def is_partitioned() -> bool:
    return connection.vendor == "postgresql"


def month_of(moment: datetime | date) -> date:
    return date(moment.year, moment.month, 1)


def next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def partition_name(table: str, month: date) -> str:
    return f"{table}_y{month.year}m{month.month:02d}"


def create_partitioned_tables(schema_editor, models) -> None:
    """Create the calls tables: partitioned by month on PostgreSQL, plain elsewhere.

    Django writes the column DDL (table_sql); only `PARTITION BY RANGE` is added. Indexes made
    on the parent are made on every partition, present and future.
    """
    for model in models:
        if schema_editor.connection.vendor != "postgresql":
            schema_editor.create_model(model)
            continue
        sql, params = schema_editor.table_sql(model)
        schema_editor.execute(f"{sql} PARTITION BY RANGE (started_at)", params or None)
        for index in model._meta.indexes:
            schema_editor.add_index(model, index)
    if schema_editor.connection.vendor == "postgresql":
        _ensure(schema_editor.connection, today=datetime.now(UTC).date(), months_ahead=3)


def call_partitions_ensure(*, months_ahead: int = 3, today: date | None = None) -> list[str]:
    """Create this month's partitions and the next `months_ahead` (idempotent); returns the
    names created now."""
    if not is_partitioned():
        return []
    return _ensure(connection, today=today or datetime.now(UTC).date(), months_ahead=months_ahead)


def previous_month(month: date) -> date:
    return date(month.year - (month.month == 1), (month.month - 2) % 12 + 1, 1)


def _ensure(conn, *, today: date, months_ahead: int) -> list[str]:
    created = []
    # The month before too: a call that started before midnight on the last day is written
    # after it, and a database migrated on the 1st still takes yesterday's calls.
    month = previous_month(month_of(today))
    with conn.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = ANY(%s)",
            [list(PARTITIONED_TABLES)],
        )
        existing = {name for (name,) in cursor.fetchall()}
        for _ in range(months_ahead + 2):
            following = next_month(month)
            for table in PARTITIONED_TABLES:
                name = partition_name(table, month)
                if name in existing:
                    continue
                cursor.execute(
                    f'CREATE TABLE IF NOT EXISTS "{name}" PARTITION OF "{table}"'
                    f" FOR VALUES FROM ('{month.isoformat()}') TO ('{following.isoformat()}')"
                )
                created.append(name)
            month = following
    return created


_ensured_month: date | None = None
_ensure_lock = threading.Lock()


def partitions_ready_for(moment: datetime) -> None:
    """Before writing calls: make sure the month of `moment` has its partition (once per
    process per month; the beat job normally made it long before)."""
    global _ensured_month
    month = month_of(moment)
    if _ensured_month == month or not is_partitioned():
        return
    with _ensure_lock:
        if _ensured_month != month:
            _ensure(connection, today=month, months_ahead=1)
            _ensured_month = month
