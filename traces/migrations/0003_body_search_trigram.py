"""On PostgreSQL, a trigram index for the Traces page's text search (LIKE '%words%'): without
it a search that finds nothing reads every body of the project in range (380 ms over 1M calls,
2.8 ms with it; docs/benchmarks.md). pg_trgm ships with PostgreSQL's contrib; where it cannot be
created (no rights), the search still works, unindexed."""

import logging

from django.db import DatabaseError, migrations

log = logging.getLogger(__name__)


def create_trigram_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        try:
            cursor.execute("SAVEPOINT trgm")
            cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
            cursor.execute("RELEASE SAVEPOINT trgm")
        except DatabaseError:
            cursor.execute("ROLLBACK TO SAVEPOINT trgm")
            log.warning("pg_trgm is not available: the Traces search stays unindexed")
            return
        cursor.execute(
            "CREATE INDEX IF NOT EXISTS traces_call_body_search_trgm"
            " ON traces_call_body USING gin (search_text gin_trgm_ops)"
        )


def drop_trigram_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS traces_call_body_search_trgm")


class Migration(migrations.Migration):
    dependencies = [("traces", "0002_call_span_index")]

    operations = [migrations.RunPython(create_trigram_index, drop_trigram_index)]
