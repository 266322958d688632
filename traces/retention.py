"""Retention: calls older than their organization's period are deleted (beat, hourly).

On PostgreSQL whole months older than the longest period in force are detached and dropped
first (O(1) whatever their size); what is left is deleted row by row in bounded batches, per
organization, so no statement holds locks on millions of rows. A call's body goes with it
(same key columns: no foreign key on a partitioned table). Sessions left without calls go too.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, date, datetime, timedelta

from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.db.models import Exists, OuterRef

from traces.models import Call, RetentionPolicy, Session
from traces.partitions import PARTITIONED_TABLES, is_partitioned, next_month

log = logging.getLogger(__name__)

MIN_DAYS = 1
MAX_DAYS = 3650
KEY = ("started_at", "project_id", "span_id")
LOCK_TIMEOUT = "2s"


def retention_days_for(*, organization_id: int) -> int:
    """The organization's period in days (its policy, else settings.TRACE_RETENTION_DAYS)."""
    days = (
        RetentionPolicy.objects.filter(organization_id=organization_id)
        .values_list("days", flat=True)
        .first()
    )
    return days if days is not None else settings.TRACE_RETENTION_DAYS


def retention_policy_set(*, organization_id: int, days: int) -> RetentionPolicy:
    if not MIN_DAYS <= days <= MAX_DAYS:
        raise ValueError(f"retention must be {MIN_DAYS} to {MAX_DAYS} days")
    policy, _ = RetentionPolicy.objects.update_or_create(
        organization_id=organization_id, defaults={"days": days}
    )
    return policy


def calls_delete_expired(*, now: datetime, batch: int = 5000) -> int:
    """Delete every call (with its body) older than its organization's period; returns the
    number of calls deleted row by row (months dropped whole are logged, not counted)."""
    default_days = settings.TRACE_RETENTION_DAYS
    policies = dict(RetentionPolicy.objects.values_list("organization_id", "days"))
    longest = max([default_days, *policies.values()])
    if is_partitioned():
        call_partitions_drop_expired(before=now - timedelta(days=longest))

    deleted = 0
    for organization_id, days in policies.items():
        cutoff = now - timedelta(days=days)
        calls = Call.objects.filter(organization_id=organization_id, started_at__lt=cutoff)
        deleted += _delete_in_batches(calls, batch=batch)
        _sessions_delete_empty(organization_id=organization_id, before=cutoff)
    # Every organization without a policy of its own, in one pass.
    cutoff = now - timedelta(days=default_days)
    calls = Call.objects.filter(started_at__lt=cutoff).exclude(organization_id__in=list(policies))
    deleted += _delete_in_batches(calls, batch=batch)
    _sessions_delete_empty(organization_id=None, before=cutoff, exclude=list(policies))
    return deleted


def call_partitions_drop_expired(*, before: datetime) -> list[str]:
    """Detach and drop the month partitions that end at or before `before` (PostgreSQL)."""
    dropped = []
    with connection.cursor() as cursor:
        for table in PARTITIONED_TABLES:
            cursor.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = %s",
                [table],
            )
            pattern = re.compile(rf"^{re.escape(table)}_y(\d{{4}})m(\d{{2}})$")
            for (name,) in cursor.fetchall():
                match = pattern.match(name)
                if match is None:
                    continue  # not one of ours: leave it
                month = date(int(match[1]), int(match[2]), 1)
                end = next_month(month)
                if datetime(end.year, end.month, end.day, tzinfo=UTC) > before:
                    continue
                # Plain DETACH (not CONCURRENTLY): it can share a transaction with the DROP, so
                # a month is never left detached but not dropped (out of pg_inherits, no later
                # run would find it). It locks the parent: waiting behind a long transaction
                # would stall every settlement queued behind it, so give up quickly instead and
                # try again next hour.
                try:
                    with transaction.atomic():
                        cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
                        cursor.execute(f'ALTER TABLE "{table}" DETACH PARTITION "{name}"')
                        cursor.execute(f'DROP TABLE "{name}"')
                except OperationalError:
                    log.warning("traces retention: %s is busy; dropped next time", name)
                    continue
                dropped.append(name)
    if dropped:
        log.info("traces retention: dropped partitions %s", ", ".join(sorted(dropped)))
    return dropped


def _delete_in_batches(calls, *, batch: int) -> int:
    """Delete the calls of the queryset `calls` and their bodies, `batch` keys at a time."""
    keys = calls.values_list(*KEY)
    if connection.vendor != "postgresql":
        # Two statements select the same keys only in a fixed order (the primary key's).
        keys = keys.order_by(*KEY)
    else:
        # One statement: any order, so the planner may take the organization's index.
        keys = keys.order_by()
    columns = ", ".join(KEY)
    total = 0
    while True:
        sql, params = keys[:batch].query.sql_with_params()
        with transaction.atomic(), connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                # One statement: the calls deleted are exactly the ones whose bodies go.
                cursor.execute(
                    f"WITH doomed AS (DELETE FROM traces_call WHERE ({columns}) IN ({sql})"
                    f" RETURNING {columns}),"
                    " bodies AS (DELETE FROM traces_call_body b USING doomed d"
                    " WHERE b.started_at = d.started_at AND b.project_id = d.project_id"
                    " AND b.span_id = d.span_id)"
                    " SELECT count(*) FROM doomed",
                    params,
                )
                count = cursor.fetchone()[0]
            else:
                # The same ordered subquery twice in one transaction: the same keys.
                cursor.execute(f"DELETE FROM traces_call_body WHERE ({columns}) IN ({sql})", params)
                cursor.execute(f"DELETE FROM traces_call WHERE ({columns}) IN ({sql})", params)
                count = cursor.rowcount
        total += count
        if count < batch:
            return total


def _sessions_delete_empty(*, organization_id, before: datetime, exclude=()) -> int:
    sessions = Session.objects.filter(updated_at__lt=before)
    if organization_id is not None:
        sessions = sessions.filter(organization_id=organization_id)
    else:
        sessions = sessions.exclude(organization_id__in=list(exclude))
    calls = Call.objects.filter(project_id=OuterRef("project_id"), session_id=OuterRef("pk"))
    deleted, _ = sessions.filter(~Exists(calls)).delete()
    return deleted
