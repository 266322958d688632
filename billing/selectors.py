"""Reads for the billing page, the usage history and the balance API.

The usage history reads rollups for days that have been rolled up and raw usage rows only for
the others (normally just today), so it stays fast however many usage rows there are.
"""

import dataclasses
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta

from django.db.models import Count, Q, Sum
from django.utils import timezone

from billing.credits import credits_remaining_micros
from billing.invoices import month_bounds
from billing.ledger import month_start
from billing.models import (
    CreditGrant,
    Invoice,
    Membership,
    Organization,
    UsageRecord,
    UsageRollup,
    UsageRollupDay,
)
from billing.quota import overage_this_month_micros
from billing.rollups import day_bounds, raw_usage_sums

GROUP_BY_MODEL = "model"
GROUP_BY_PROJECT = "project"


def administers_any_organization(*, user) -> bool:
    """Whether `user` may open the billing page at all (the header shows its link)."""
    return (
        user.is_authenticated
        and Membership.objects.filter(user=user, role=Membership.Role.ADMIN).exists()
    )


def organizations_administered(*, user) -> list[Organization]:
    """Organizations whose billing `user` may see: those where they are an admin."""
    if not user.is_authenticated:
        return []
    return list(
        Organization.objects.filter(memberships__user=user, memberships__role=Membership.Role.ADMIN)
        .select_related("plan")
        .order_by("name", "id")
    )


@dataclasses.dataclass(frozen=True)
class UsageRow:
    day: date
    key: str  # the model ID, or "team/project"
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cost_micros: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def _rolled_up_days(*, start: date, end: date) -> set[date]:
    return set(
        UsageRollupDay.objects.filter(day__gte=start, day__lte=end).values_list("day", flat=True)
    )


def usage_by_day(
    *,
    organization_id: int,
    start: date,
    end: date,
    group_by: str = GROUP_BY_MODEL,
    model: str = "",
    project: str = "",
) -> list[UsageRow]:
    """Daily usage between `start` and `end` (inclusive, UTC days), one row per day and group.

    `project` filters on "team/project". Rows are ordered by day, then group.
    """
    rolled = _rolled_up_days(start=start, end=end)
    key_fields = ["model"] if group_by == GROUP_BY_MODEL else ["team", "project"]
    sums = {
        "requests_sum": Sum("requests"),
        "prompt_sum": Sum("prompt_tokens"),
        "completion_sum": Sum("completion_tokens"),
        "cost_sum": Sum("cost_micros"),
    }
    filters = Q()
    if model:
        filters &= Q(model=model)
    if project:
        team_name, _, project_name = project.partition("/")
        filters &= Q(team=team_name, project=project_name)

    totals: dict[tuple[date, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])

    def add(day, group, values):
        key = (
            group["model"] if group_by == GROUP_BY_MODEL else f"{group['team']}/{group['project']}"
        )
        bucket = totals[(day, key)]
        for i, value in enumerate(values):
            bucket[i] += value or 0

    if rolled:
        rollups = (
            UsageRollup.objects.filter(filters, organization_id=organization_id, day__in=rolled)
            .values("day", *key_fields)
            .annotate(**sums)
            .order_by()
        )
        for g in rollups:
            add(
                g["day"],
                g,
                (g["requests_sum"], g["prompt_sum"], g["completion_sum"], g["cost_sum"]),
            )

    # Days not rolled up yet (today, or a day the worker has not reached): raw rows, one day per
    # query so the index on (organization, created_at) does the work and no per-row date
    # function runs (SQLite evaluates those in Python).
    day = start
    while day <= end:
        if day not in rolled:
            day_start, day_end = day_bounds(day)
            raw = (
                UsageRecord.objects.filter(
                    filters,
                    organization_id=organization_id,
                    created_at__gte=day_start,
                    created_at__lt=day_end,
                )
                .values(*key_fields)
                .annotate(**raw_usage_sums())
                .order_by()
            )
            for g in raw:
                add(
                    day,
                    g,
                    (g["requests_sum"], g["prompt_sum"], g["completion_sum"], g["cost_sum"]),
                )
        day += timedelta(days=1)

    return [
        UsageRow(
            day=d,
            key=k,
            requests=v[0],
            prompt_tokens=v[1],
            completion_tokens=v[2],
            cost_micros=v[3],
        )
        for (d, k), v in sorted(totals.items())
    ]


def usage_filter_choices(*, organization_id: int, start: date, end: date) -> dict[str, list[str]]:
    """Models and team/project names that have usage in the range (from rollups, plus today)."""
    rollups = UsageRollup.objects.filter(
        organization_id=organization_id, day__gte=start, day__lte=end
    )
    models = set(rollups.values_list("model", flat=True).distinct().order_by())
    projects = {
        f"{team}/{project}"
        for team, project in rollups.values_list("team", "project").distinct().order_by()
    }
    today = timezone.now().astimezone(UTC).date()
    if start <= today <= end:
        today_start, today_end = day_bounds(today)
        raw = UsageRecord.objects.filter(
            organization_id=organization_id, created_at__gte=today_start, created_at__lt=today_end
        )
        models |= set(raw.values_list("model", flat=True).distinct().order_by())
        projects |= {
            f"{team}/{project}"
            for team, project in raw.values_list("team", "project").distinct().order_by()
        }
    return {"models": sorted(models), "projects": sorted(projects)}


@dataclasses.dataclass(frozen=True)
class UpcomingCharges:
    """What a plan with overage will be billed for this month, so far and projected."""

    month: date
    spend_so_far_micros: int
    overage_so_far_micros: int
    projected_overage_micros: int
    cap_micros: int


@dataclasses.dataclass(frozen=True)
class BillingSummary:
    organization: Organization
    balance_micros: int
    reserved_micros: int
    credits_remaining_micros: int
    spend_this_month_micros: int
    requests_this_month: int
    tokens_this_month: int
    upcoming: UpcomingCharges | None
    grants: list[CreditGrant]
    invoices: list[Invoice]


def month_usage_totals(*, organization_id: int, now: datetime) -> dict[str, int]:
    """Requests, tokens and spend of the organization in the current month (rollups + raw)."""
    start = month_start(now)
    today = now.astimezone(UTC).date()
    rows = usage_by_day(organization_id=organization_id, start=start, end=today)
    return {
        "cost_micros": sum(r.cost_micros for r in rows),
        "requests": sum(r.requests for r in rows),
        "tokens": sum(r.total_tokens for r in rows),
    }


def upcoming_charges(
    *, organization: Organization, spend_so_far_micros: int, credits_micros: int, now: datetime
) -> UpcomingCharges | None:
    """Overage so far this month and a projection at the month's spend rate (paid plans only).

    The projection assumes the rest of the month spends at the average rate so far; credits
    left cover the first part of it; the cap bounds it.
    """
    plan = organization.plan
    if not plan.allows_overage:
        return None
    month = month_start(now)
    start, end = month_bounds(month)
    overage = overage_this_month_micros(organization=organization, now=now)
    elapsed = max((now - start).total_seconds(), 3600.0)
    remaining = max((end - now).total_seconds(), 0.0)
    projected_more_spend = int(spend_so_far_micros * remaining / elapsed)
    projected = overage + max(0, projected_more_spend - credits_micros)
    return UpcomingCharges(
        month=month,
        spend_so_far_micros=spend_so_far_micros,
        overage_so_far_micros=overage,
        projected_overage_micros=min(projected, organization.monthly_spend_cap_micros),
        cap_micros=organization.monthly_spend_cap_micros,
    )


def billing_summary(*, organization: Organization, now: datetime | None = None) -> BillingSummary:
    """Everything the billing page shows above the usage history."""
    now = now or timezone.now()
    organization = Organization.objects.select_related("plan").get(pk=organization.pk)
    credits = credits_remaining_micros(organization_id=organization.pk, now=now)
    month = month_usage_totals(organization_id=organization.pk, now=now)
    return BillingSummary(
        organization=organization,
        balance_micros=organization.balance_micros,
        reserved_micros=organization.reserved_micros,
        credits_remaining_micros=credits,
        spend_this_month_micros=month["cost_micros"],
        requests_this_month=month["requests"],
        tokens_this_month=month["tokens"],
        upcoming=upcoming_charges(
            organization=organization,
            spend_so_far_micros=month["cost_micros"],
            credits_micros=credits,
            now=now,
        ),
        grants=list(
            CreditGrant.objects.filter(organization=organization).order_by("-created_at", "-id")[
                :50
            ]
        ),
        invoices=list(Invoice.objects.filter(organization=organization)[:24]),
    )


def lost_requests(
    *, organization_id: int, start: date, end: date, model: str = "", project: str = ""
) -> dict[str, int]:
    """Requests settled as `lost` between `start` and `end` (their gateway process died before
    settling them: charged for the prompt only): {"count", "cost_micros"}."""
    rows = UsageRecord.objects.filter(
        organization_id=organization_id,
        status=UsageRecord.Status.LOST,
        created_at__gte=day_bounds(start)[0],
        created_at__lt=day_bounds(end)[1],
    )
    if model:
        rows = rows.filter(model=model)
    if project:
        team_name, _, project_name = project.partition("/")
        rows = rows.filter(team=team_name, project=project_name)
    found = rows.aggregate(count=Count("pk"), cost_micros=Sum("cost_micros"))
    return {"count": found["count"] or 0, "cost_micros": found["cost_micros"] or 0}


def organizations_of_member(*, user) -> list[Organization]:
    """Organizations `user` belongs to in any role (the plan page is readable by all of them)."""
    if not user.is_authenticated:
        return []
    return list(
        Organization.objects.filter(memberships__user=user)
        .select_related("plan")
        .order_by("name", "id")
        .distinct()
    )


def latest_usage(*, organization_id: int, limit: int = 20) -> list[UsageRecord]:
    """The organization's latest requests, newest first (the usage page's activity list)."""
    return list(
        UsageRecord.objects.filter(organization_id=organization_id)
        .select_related("user")
        .order_by("-created_at", "-id")[:limit]
    )


def out_of_credits(*, organization: Organization, now: datetime | None = None) -> bool:
    """Whether new requests would be refused for lack of credits (Free, Academic), or because
    a plan with overage has used its whole monthly cap."""
    from billing.quota import spendable_micros

    return spendable_micros(organization=organization, now=now or timezone.now()) <= 0


HOURLY_MAX_DAYS = 2


def usage_by_hour(
    *,
    organization_id: int,
    start: date,
    end: date,
    group_by: str = GROUP_BY_MODEL,
    model: str = "",
    project: str = "",
) -> list[tuple[datetime, str, int, int]]:
    """(hour, group, cost, tokens) from the raw usage rows, for ranges of HOURLY_MAX_DAYS or
    less (rollups are daily; two days of raw rows are few enough to group by hour)."""
    from django.db.models.functions import TruncHour

    rows = UsageRecord.objects.filter(
        organization_id=organization_id,
        created_at__gte=day_bounds(start)[0],
        created_at__lt=day_bounds(end)[1],
    )
    if model:
        rows = rows.filter(model=model)
    if project:
        team_name, _, project_name = project.partition("/")
        rows = rows.filter(team=team_name, project=project_name)
    key_fields = ["model"] if group_by == GROUP_BY_MODEL else ["team", "project"]
    grouped = (
        rows.annotate(hour=TruncHour("created_at", tzinfo=UTC))
        .values("hour", *key_fields)
        .annotate(
            cost=Sum("cost_micros"),
            prompt=Sum("prompt_tokens"),
            completion=Sum("completion_tokens"),
        )
        .order_by()
    )
    return [
        (
            g["hour"],
            g["model"] if group_by == GROUP_BY_MODEL else f"{g['team']}/{g['project']}",
            g["cost"] or 0,
            (g["prompt"] or 0) + (g["completion"] or 0),
        )
        for g in grouped
    ]
