"""Rollups, invoices and expiry: rollups equal the raw rows; running a job twice changes nothing."""

from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import IntegrityError, transaction
from django.db.models import Count, Sum
from django.utils import timezone

from billing import tasks
from billing.invoices import invoice_issue, invoices_issue_for_month
from billing.ledger import ledger_sum_micros
from billing.models import (
    MICROS_PER_DOLLAR,
    CreditGrant,
    Invoice,
    LedgerEntry,
    UsageRecord,
    UsageRollup,
    UsageRollupDay,
)
from billing.rollups import day_bounds
from billing.usage import settle_usage
from tests.billing.conftest import make_org, make_report

pytestmark = pytest.mark.django_db

DAY = date(2026, 10, 14)


def at(day: date, hour: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def snapshot(model, **filters):
    return sorted(
        model.objects.filter(**filters).values_list(
            *[f.attname for f in model._meta.concrete_fields if f.attname != "id"]
        )
    )


def test_rollups_equal_the_raw_rows_and_rerunning_changes_nothing():
    org_a, org_b = make_org(), make_org()
    for i in range(12):
        org = org_a if i % 3 else org_b
        settle_usage(
            make_report(
                org,
                prompt_tokens=100 + i,
                completion_tokens=10 * i,
                model=["m-one", "m-two"][i % 2],
                project=["p1", "p2", "p3"][i % 3],
                created_at=at(DAY, i),
            )
        )
    settle_usage(
        make_report(org_a, created_at=at(DAY + timedelta(days=1), 0))
    )  # next day: excluded

    tasks.rollup_usage_day(DAY.isoformat())
    first = snapshot(UsageRollup, day=DAY)
    tasks.rollup_usage_day(DAY.isoformat())
    assert snapshot(UsageRollup, day=DAY) == first

    start, end = day_bounds(DAY)
    raw = (
        UsageRecord.objects.filter(created_at__gte=start, created_at__lt=end)
        .values("organization_id", "team", "project", "model")
        .annotate(
            n=Count("id"),
            p=Sum("prompt_tokens"),
            c=Sum("completion_tokens"),
            cost=Sum("cost_micros"),
        )
    )
    expected = sorted(
        (
            r["organization_id"],
            r["team"],
            r["project"],
            r["model"],
            r["n"],
            r["p"],
            r["c"],
            r["cost"],
        )
        for r in raw
    )
    got = sorted(
        UsageRollup.objects.filter(day=DAY).values_list(
            "organization_id",
            "team",
            "project",
            "model",
            "requests",
            "prompt_tokens",
            "completion_tokens",
            "cost_micros",
        )
    )
    assert got == expected and len(got) == 6
    assert UsageRollupDay.objects.get(day=DAY).usage_records == 12


def test_a_late_settlement_is_picked_up_by_the_next_rollup():
    org = make_org()
    settle_usage(make_report(org, created_at=at(DAY, 1)))
    tasks.rollup_usage_day(DAY.isoformat())
    settle_usage(make_report(org, created_at=at(DAY, 23)))
    tasks.rollup_usage_day(DAY.isoformat())
    assert UsageRollup.objects.get(day=DAY).requests == 2


def spend_overage(org, dollars, created_at=None):
    cost = dollars * MICROS_PER_DOLLAR
    return settle_usage(
        make_report(
            org,
            prompt_tokens=cost,
            completion_tokens=0,
            input_price_micros=1_000_000,
            created_at=created_at,
        )
    )


def test_month_end_invoice_once_per_organization_and_month(pro_org, monkeypatch):
    free = make_org(plan_code="free")
    # Use up the Pro credits and 7 USD more (overage).
    spend_overage(pro_org, 20 + 7)
    spend_overage(free, 1)  # within its credits: no overage, no invoice
    this_month = timezone.now().date().replace(day=1)
    with pytest.raises(ValueError):
        invoices_issue_for_month(month=this_month)  # the month is not over

    # Run "next month", as the beat would on the 1st.
    next_month = (this_month + timedelta(days=32)).replace(day=1)
    later = datetime(next_month.year, next_month.month, 1, 0, 17, tzinfo=UTC)
    monkeypatch.setattr(timezone, "now", lambda: later)
    assert tasks.issue_last_month_invoices() == 1
    assert tasks.issue_last_month_invoices() == 0
    assert tasks.issue_invoice(pro_org.pk, this_month.isoformat()) is None
    invoice = Invoice.objects.get()
    assert (invoice.organization_id, invoice.month, invoice.overage_micros) == (
        pro_org.pk,
        this_month,
        7 * MICROS_PER_DOLLAR,
    )
    # The invoice takes the overage off the balance: the organization is back at zero credits.
    pro_org.refresh_from_db()
    assert pro_org.balance_micros == 0 == ledger_sum_micros(organization_id=pro_org.pk)
    assert LedgerEntry.objects.filter(invoice=invoice).count() == 1
    with pytest.raises(IntegrityError), transaction.atomic():
        Invoice.objects.create(organization=pro_org, month=this_month, overage_micros=1)


def test_invoice_issue_skips_months_without_overage(pro_org):
    assert invoice_issue(organization_id=pro_org.pk, month=date(2020, 1, 1)) is None


def test_expiry_task_runs_once(free_org, monkeypatch):
    grant = CreditGrant.objects.get(organization=free_org)
    later = grant.expires_at + timedelta(minutes=1)
    monkeypatch.setattr(timezone, "now", lambda: later)
    assert tasks.expire_due_credits() == 1
    assert tasks.expire_due_credits() == 0
    assert tasks.expire_organization_credits(free_org.pk) == 0
    free_org.refresh_from_db()
    assert free_org.balance_micros == 0 == ledger_sum_micros(organization_id=free_org.pk)
    assert LedgerEntry.objects.filter(kind="expiration").count() == 1


def test_rollup_recent_usage_marks_finished_days_only():
    org = make_org()
    now = timezone.now()
    settle_usage(make_report(org, created_at=now - timedelta(days=1)))
    days = tasks.rollup_recent_usage()
    today = now.astimezone(UTC).date()
    assert days == [
        (today - timedelta(days=1)).isoformat(),
        (today - timedelta(days=2)).isoformat(),
    ]
    assert not UsageRollupDay.objects.filter(day=today).exists()
    assert UsageRollup.objects.get(day=today - timedelta(days=1)).requests == 1


def test_billing_jobs_command_runs_each_job():
    from io import StringIO

    from django.core.management import call_command

    org = make_org()
    settle_usage(make_report(org, created_at=at(DAY, 3)))
    out = StringIO()
    call_command("billing_jobs", "rollup", "--day", DAY.isoformat(), stdout=out)
    call_command("billing_jobs", "invoices", "--month", "2026-10", stdout=out)
    call_command("billing_jobs", "expire", stdout=out)
    assert out.getvalue().splitlines() == [
        f"{DAY}: 1 rollup rows",
        "2026-10: 0 invoice(s) issued",
        "0 grant(s) expired",
    ]
    assert UsageRollup.objects.get(day=DAY).requests == 1


def test_check_finds_a_balance_that_left_its_ledger():
    from django.core.management import CommandError, call_command

    from billing.models import Organization

    org = make_org()
    settle_usage(make_report(org))
    call_command("billing_jobs", "check")
    Organization.objects.filter(pk=org.pk).update(balance_micros=0)  # written behind the ledger
    with pytest.raises(CommandError):
        call_command("billing_jobs", "check")
