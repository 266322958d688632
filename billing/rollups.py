"""Daily usage rollups: per organization, team, project, model and day, from UsageRecord rows.

A day is recomputed and replaced as a whole, so running the rollup twice changes nothing and a
late settlement is picked up by the next run.
"""

from datetime import UTC, date, datetime, time, timedelta

from django.db import transaction
from django.db.models import Count, Sum
from django.utils import timezone

from billing.models import UsageRecord, UsageRollup, UsageRollupDay


def raw_usage_sums() -> dict:
    """Aggregates of raw usage rows, named like UsageRollup's fields (for .annotate())."""
    return {
        "requests_sum": Count("id"),
        "prompt_sum": Sum("prompt_tokens"),
        "completion_sum": Sum("completion_tokens"),
        "cost_sum": Sum("cost_micros"),
    }


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The UTC instants [start, end) of a calendar day."""
    start = datetime.combine(day, time.min, tzinfo=UTC)
    return start, start + timedelta(days=1)


def usage_rollup_day(*, day: date, now: datetime | None = None) -> int:
    """Recompute the rollups of `day` from raw usage rows; returns the number of rollup rows.

    Once the day is over the day is marked rolled up, and readers use its rollups instead of
    scanning its raw rows.
    """
    now = now or timezone.now()
    start, end = day_bounds(day)
    groups = (
        UsageRecord.objects.filter(created_at__gte=start, created_at__lt=end)
        .values("organization_id", "team", "project", "model")
        .annotate(**raw_usage_sums())
        .order_by()
    )
    rows = [
        UsageRollup(
            organization_id=g["organization_id"],
            day=day,
            team=g["team"],
            project=g["project"],
            model=g["model"],
            requests=g["requests_sum"],
            prompt_tokens=g["prompt_sum"] or 0,
            completion_tokens=g["completion_sum"] or 0,
            cost_micros=g["cost_sum"] or 0,
        )
        for g in groups
    ]
    with transaction.atomic():
        UsageRollup.objects.filter(day=day).delete()
        UsageRollup.objects.bulk_create(rows, batch_size=1000)
        if now >= end:
            UsageRollupDay.objects.update_or_create(
                day=day,
                defaults={"computed_at": now, "usage_records": sum(r.requests for r in rows)},
            )
    return len(rows)


def usage_rollup_recent(*, days: int = 2, now: datetime | None = None) -> list[date]:
    """Recompute the last `days` finished days (yesterday first); what the hourly beat runs."""
    now = now or timezone.now()
    today = now.astimezone(UTC).date()
    done = []
    for back in range(1, days + 1):
        day = today - timedelta(days=back)
        usage_rollup_day(day=day, now=now)
        done.append(day)
    return done
