"""Reading a live stack's database straight from the test process (plain sqlite3 / psycopg).

The test process's Django is configured for pytest-django's own test database, so the stack's
database is read without the ORM: the assertions are about rows the servers wrote.
"""

import sqlite3
from urllib.parse import urlparse

USAGE_TABLE = "billing_usagerecord"


def query(database_url: str, sql: str, params: tuple = ()) -> list[dict]:
    """Rows as dicts. Write placeholders as %s; they are translated for SQLite."""
    if database_url.startswith("sqlite"):
        path = urlparse(database_url).path
        # sqlite:////abs/path parses to path "//abs/path"
        path = "/" + path.lstrip("/")
        with sqlite3.connect(path, timeout=20) as conn:
            conn.row_factory = sqlite3.Row
            return [dict(row) for row in conn.execute(sql.replace("%s", "?"), params)]
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        return list(conn.execute(sql, params))


def execute(database_url: str, sql: str, params: tuple = ()) -> None:
    if database_url.startswith("sqlite"):
        path = "/" + urlparse(database_url).path.lstrip("/")
        with sqlite3.connect(path, timeout=20) as conn:
            conn.execute(sql.replace("%s", "?"), params)
        return
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql, params)


def usage_rows(database_url: str) -> list[dict]:
    return query(database_url, f"SELECT * FROM {USAGE_TABLE} ORDER BY id")
