"""The ledger and credit grants: balance = sum of the ledger, grants used soonest-expiring first,
expiry, overage on Pro, the cap, plan changes."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from billing.credits import credits_expire_due, credits_remaining_micros, grant_credits
from billing.errors import QuotaExceeded
from billing.ledger import ledger_sum_micros
from billing.models import MICROS_PER_DOLLAR, CreditGrant, LedgerEntry, Organization, PlanChange
from billing.organizations import organization_change_plan
from billing.quota import release_reservation, reserve_credits
from billing.usage import settle_usage
from tests.billing.conftest import make_report

pytestmark = pytest.mark.django_db


def assert_ledger_matches(org: Organization) -> Organization:
    org.refresh_from_db()
    assert org.balance_micros == ledger_sum_micros(organization_id=org.pk)
    return org


def test_new_organization_gets_plan_credits_as_a_ledger_grant(free_org):
    grant = CreditGrant.objects.get(organization=free_org)
    assert grant.kind == CreditGrant.Kind.PLAN
    assert grant.amount_micros == grant.remaining_micros == 5 * MICROS_PER_DOLLAR
    assert grant.expires_at > timezone.now() + timedelta(days=29)
    entry = LedgerEntry.objects.get(organization=free_org)
    assert (entry.kind, entry.amount_micros, entry.grant_id) == (
        "grant",
        grant.amount_micros,
        grant.pk,
    )
    assert assert_ledger_matches(free_org).balance_micros == 5 * MICROS_PER_DOLLAR
    assert PlanChange.objects.get(organization=free_org).to_plan.code == "free"


def test_grants_are_consumed_soonest_expiring_first(free_org):
    now = timezone.now()
    late = grant_credits(
        organization=free_org,
        amount_micros=3_000,
        kind="purchase",
        expires_at=now + timedelta(days=300),
    )
    never = grant_credits(organization=free_org, amount_micros=3_000, kind="promotion")
    soon = grant_credits(
        organization=free_org,
        amount_micros=1_000,
        kind="promotion",
        expires_at=now + timedelta(days=1),
    )
    plan_grant = CreditGrant.objects.get(organization=free_org, kind="plan")  # expires in 30 days
    # Use exactly the plan grant + the soon one + 500 more: the 300-day grant pays, "never" is untouched.
    cost = plan_grant.amount_micros + 1_000 + 500
    settle_usage(
        make_report(
            free_org,
            prompt_tokens=cost,
            completion_tokens=0,
            input_price_micros=1_000_000,
            output_price_micros=0,
        )
    )
    for grant in (late, never, soon, plan_grant):
        grant.refresh_from_db()
    assert soon.remaining_micros == 0
    assert plan_grant.remaining_micros == 0
    assert late.remaining_micros == 2_500
    assert never.remaining_micros == 3_000
    org = assert_ledger_matches(free_org)
    assert org.balance_micros == 5_500 == credits_remaining_micros(organization_id=org.pk)


def test_expiry_writes_off_what_remains_once(free_org):
    grant = CreditGrant.objects.get(organization=free_org)
    settle_usage(
        make_report(
            free_org, prompt_tokens=1_000, completion_tokens=0, input_price_micros=1_000_000
        )
    )
    later = grant.expires_at + timedelta(seconds=1)
    assert credits_expire_due(organization_id=free_org.pk, now=later) == 1
    assert credits_expire_due(organization_id=free_org.pk, now=later) == 0
    expirations = LedgerEntry.objects.filter(organization=free_org, kind="expiration")
    assert [e.amount_micros for e in expirations] == [-(5 * MICROS_PER_DOLLAR - 1_000)]
    grant.refresh_from_db()
    assert grant.remaining_micros == 0 and grant.expired_at == later
    assert assert_ledger_matches(free_org).balance_micros == 0


def test_an_expired_grant_no_longer_pays_for_reservations(free_org):
    grant = CreditGrant.objects.get(organization=free_org)
    CreditGrant.objects.filter(pk=grant.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(QuotaExceeded):
        reserve_credits(organization_id=free_org.pk, request_id="r-expired", amount_micros=1)
    # The reservation expired the grant on the spot, with its ledger entry.
    assert LedgerEntry.objects.filter(organization=free_org, kind="expiration").count() == 1
    assert assert_ledger_matches(free_org).balance_micros == 0


def test_free_plan_refuses_what_it_cannot_pay_and_holds_nothing(free_org):
    balance = free_org.balance_micros
    reserve_credits(organization_id=free_org.pk, request_id="r1", amount_micros=balance - 10)
    with pytest.raises(QuotaExceeded):
        reserve_credits(organization_id=free_org.pk, request_id="r2", amount_micros=11)
    free_org.refresh_from_db()
    assert free_org.reserved_micros == balance - 10
    release_reservation(request_id="r1")
    release_reservation(request_id="r1")  # twice is harmless
    free_org.refresh_from_db()
    assert free_org.reserved_micros == 0
    reserve_credits(organization_id=free_org.pk, request_id="r2", amount_micros=balance)


def test_reserving_the_same_request_twice_holds_once(free_org):
    reserve_credits(organization_id=free_org.pk, request_id="same", amount_micros=1_000)
    reserve_credits(organization_id=free_org.pk, request_id="same", amount_micros=1_000)
    free_org.refresh_from_db()
    assert free_org.reserved_micros == 1_000


def test_pro_plan_runs_into_overage_until_the_monthly_cap(pro_org):
    credits = pro_org.balance_micros
    cap = pro_org.plan.monthly_spend_cap_micros
    # Spend all credits and 100 USD more: the extra is overage, the balance goes negative.
    cost = credits + 100 * MICROS_PER_DOLLAR
    reserve_credits(organization_id=pro_org.pk, request_id="big", amount_micros=cost)
    settle_usage(
        make_report(
            pro_org,
            request_id="big",
            prompt_tokens=cost,
            completion_tokens=0,
            input_price_micros=1_000_000,
        )
    )
    org = assert_ledger_matches(pro_org)
    assert org.balance_micros == -100 * MICROS_PER_DOLLAR
    assert org.overage_micros == 100 * MICROS_PER_DOLLAR
    charge = LedgerEntry.objects.get(organization=org, kind="charge")
    assert charge.overage_micros == 100 * MICROS_PER_DOLLAR
    # Up to the cap is fine, one micro-dollar past it is not.
    room = cap - 100 * MICROS_PER_DOLLAR
    with pytest.raises(QuotaExceeded):
        reserve_credits(organization_id=org.pk, request_id="over", amount_micros=room + 1)
    reserve_credits(organization_id=org.pk, request_id="fits", amount_micros=room)
    with pytest.raises(QuotaExceeded):
        reserve_credits(organization_id=org.pk, request_id="one-more", amount_micros=1)


def test_plan_change_is_recorded_and_grants_the_new_plan_credits(free_org):
    change = organization_change_plan(organization=free_org, plan_code="pro", note="upgrade")
    assert (change.from_plan.code, change.to_plan.code) == ("free", "pro")
    assert organization_change_plan(organization=free_org, plan_code="pro") is None
    org = assert_ledger_matches(free_org)
    assert org.plan.code == "pro"
    assert org.balance_micros == 25 * MICROS_PER_DOLLAR
    assert PlanChange.objects.filter(organization=org).count() == 2


def test_ledger_is_append_only_per_request(free_org):
    settle_usage(make_report(free_org, request_id="dup"))
    with pytest.raises(IntegrityError), transaction.atomic():
        LedgerEntry.objects.create(
            organization=free_org,
            kind="charge",
            amount_micros=-1,
            balance_after_micros=0,
            request_id="dup",
        )


def test_a_grant_must_be_positive(free_org):
    with pytest.raises(ValueError):
        grant_credits(organization=free_org, amount_micros=0)


def test_a_negative_adjustment_uses_credits_and_stays_in_the_ledger(free_org):
    from billing.credits import balance_adjust

    balance_adjust(organization=free_org, amount_micros=-4_000_000, note="correction")
    org = assert_ledger_matches(free_org)
    assert org.balance_micros == 1_000_000 == credits_remaining_micros(organization_id=org.pk)
    with pytest.raises(ValueError):
        balance_adjust(organization=free_org, amount_micros=5, note="")


def test_a_settled_request_cannot_be_reserved_again(free_org):
    report = make_report(free_org)
    settle_usage(report)
    reserve_credits(organization_id=free_org.pk, request_id=report.request_id, amount_micros=1_000)
    free_org.refresh_from_db()
    assert free_org.reserved_micros == 0
