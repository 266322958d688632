"""The per-request billing path (reserve_credits, settle_usage) does its expiry and grant work
only when there is some to do, and still does it when there is."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from billing.credits import credits_remaining_micros, grant_credits
from billing.errors import QuotaExceeded
from billing.models import CreditGrant, LedgerEntry, Organization
from billing.quota import reserve_credits
from billing.usage import settle_usage
from tests.billing.conftest import make_org, make_report
from tests.billing.test_ledger import assert_ledger_matches

pytestmark = pytest.mark.django_db


def _statements(queries) -> list[str]:
    """The SQL of the captured queries, without the savepoints the test transaction adds."""
    return [
        q["sql"]
        for q in queries
        if not q["sql"].upper().startswith(("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO"))
    ]


def _make_due(grant: CreditGrant) -> None:
    CreditGrant.objects.filter(pk=grant.pk).update(expires_at=timezone.now() - timedelta(seconds=1))


def _expirations(org: Organization) -> list[int]:
    return list(
        LedgerEntry.objects.filter(organization=org, kind="expiration").values_list(
            "amount_micros", flat=True
        )
    )


def test_reserve_expires_a_due_grant_once_then_does_no_expiry_work(free_org):
    plan_grant = CreditGrant.objects.get(organization=free_org)
    grant_credits(organization=free_org, amount_micros=2_000, kind="purchase")
    _make_due(plan_grant)

    reserve_credits(organization_id=free_org.pk, request_id="r-1", amount_micros=2_000)
    assert _expirations(free_org) == [-plan_grant.amount_micros]
    plan_grant.refresh_from_db()
    assert plan_grant.expired_at is not None and plan_grant.remaining_micros == 0

    with CaptureQueriesContext(connection) as captured:
        with pytest.raises(QuotaExceeded):  # only the 2,000 purchase is left, and it is held
            reserve_credits(organization_id=free_org.pk, request_id="r-2", amount_micros=1)
    statements = _statements(captured.captured_queries)
    assert not [s for s in statements if "creditgrant" in s and s.startswith("UPDATE")]
    assert _expirations(free_org) == [-plan_grant.amount_micros]
    assert assert_ledger_matches(free_org).balance_micros == 2_000


def test_settle_expires_a_grant_that_fell_due_after_the_reservation(free_org):
    plan_grant = CreditGrant.objects.get(organization=free_org)
    purchase = grant_credits(organization=free_org, amount_micros=5_000, kind="purchase")
    reserve_credits(organization_id=free_org.pk, request_id="r-due", amount_micros=3_000)
    _make_due(plan_grant)

    settle_usage(
        make_report(
            free_org,
            request_id="r-due",
            prompt_tokens=3_000,
            completion_tokens=0,
            input_price_micros=1_000_000,
        )
    )
    # The expired grant paid nothing: it was written off whole, and the purchase paid.
    assert _expirations(free_org) == [-plan_grant.amount_micros]
    purchase.refresh_from_db()
    assert purchase.remaining_micros == 2_000
    org = assert_ledger_matches(free_org)
    assert org.balance_micros == 2_000 == credits_remaining_micros(organization_id=org.pk)
    assert org.reserved_micros == 0


def test_pro_reservation_counts_live_credits_plus_the_cap_after_an_expiry(pro_org):
    plan_grant = CreditGrant.objects.get(organization=pro_org)
    grant_credits(organization=pro_org, amount_micros=7_000, kind="purchase")
    _make_due(plan_grant)
    cap = pro_org.plan.monthly_spend_cap_micros
    with pytest.raises(QuotaExceeded):
        reserve_credits(organization_id=pro_org.pk, request_id="r-over", amount_micros=cap + 7_001)
    assert _expirations(pro_org) == [-plan_grant.amount_micros]
    reserve_credits(organization_id=pro_org.pk, request_id="r-fit", amount_micros=cap + 7_000)
    pro_org.refresh_from_db()
    assert pro_org.reserved_micros == cap + 7_000
    assert _expirations(pro_org) == [-plan_grant.amount_micros]


def test_a_charge_beyond_the_expiring_grants_uses_the_never_expiring_ones_oldest_first(free_org):
    plan_grant = CreditGrant.objects.get(organization=free_org)
    first = grant_credits(organization=free_org, amount_micros=1_000, kind="promotion")
    second = grant_credits(organization=free_org, amount_micros=1_000, kind="promotion")
    settle_usage(
        make_report(
            free_org,
            prompt_tokens=plan_grant.amount_micros + 1_500,
            completion_tokens=0,
            input_price_micros=1_000_000,
        )
    )
    for grant in (plan_grant, first, second):
        grant.refresh_from_db()
    assert (plan_grant.remaining_micros, first.remaining_micros, second.remaining_micros) == (
        0,
        0,
        500,
    )
    assert assert_ledger_matches(free_org).balance_micros == 500


def test_settling_releases_a_hold_even_when_reported_under_another_organization(free_org):
    other = make_org(plan_code="free")
    reserve_credits(organization_id=free_org.pk, request_id="r-x", amount_micros=1_000)
    settle_usage(make_report(other, request_id="r-x"))
    free_org.refresh_from_db()
    other.refresh_from_db()
    assert free_org.reserved_micros == 0 and other.reserved_micros == 0
    assert_ledger_matches(other)


def test_the_hot_path_stays_within_its_statement_budget(free_org):
    # Guards the savings measured in bench/billing_hotpath.py: lock, one combined check, the
    # hold and the reserved counter; then lock, check, usage row, hold release, grant lookup,
    # grant update, ledger entry, one organization update; and the request's call row (traces),
    # with the project's id looked up from its name (a gateway call knows it: no lookup there).
    with CaptureQueriesContext(connection) as reserve_queries:
        reserve_credits(organization_id=free_org.pk, request_id="r-budget", amount_micros=1_000)
    with CaptureQueriesContext(connection) as settle_queries:
        settle_usage(make_report(free_org, request_id="r-budget"))
    assert len(_statements(reserve_queries.captured_queries)) <= 4
    assert len(_statements(settle_queries.captured_queries)) <= 10
    org = assert_ledger_matches(free_org)
    assert org.reserved_micros == 0
