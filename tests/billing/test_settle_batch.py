"""settle_usage_batch: many usage rows in one transaction, with the same outcome as settling
them one by one (the gateway's background lane writes its usage rows this way)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing.credits import credits_remaining_micros
from billing.models import LedgerEntry, Organization, UsageRecord
from billing.quota import reserve_credits
from billing.usage import settle_usage, settle_usage_batch
from tests.billing.conftest import make_org, make_report
from tests.billing.test_hotpath import _statements
from tests.billing.test_ledger import assert_ledger_matches

pytestmark = pytest.mark.django_db


def _costing(org: Organization, cost_micros: int, request_id: str):
    # One million prompt tokens at `cost_micros` per million: the report costs exactly that.
    return make_report(
        org,
        request_id=request_id,
        prompt_tokens=1_000_000,
        completion_tokens=0,
        input_price_micros=cost_micros,
    )


def _ledger(org: Organization) -> list[tuple]:
    return list(
        LedgerEntry.objects.filter(organization=org, kind="charge")
        .order_by("id")
        .values_list("amount_micros", "overage_micros", "balance_after_micros")
    )


def _charge_sequence(org: Organization) -> list:
    """Five charges (one a duplicate id) that run past the organization's credits."""
    credits = credits_remaining_micros(organization_id=org.pk)
    share = credits * 2 // 5 + 7  # the third charge crosses into overage
    return [
        _costing(org, share, f"{org.pk}-a"),
        _costing(org, share, f"{org.pk}-b"),
        _costing(org, share, f"{org.pk}-c"),
        _costing(org, share, f"{org.pk}-a"),  # a replay within the same batch
        _costing(org, 1_234, f"{org.pk}-d"),
    ]


def test_a_batch_charges_exactly_as_one_by_one_settlement_does():
    one_by_one, batched = make_org(plan_code="pro"), make_org(plan_code="pro")
    for report in _charge_sequence(one_by_one):
        settle_usage(report)

    records = settle_usage_batch(_charge_sequence(batched))

    assert [r.request_id for r in records] == [
        f"{batched.pk}-{x}" for x in ("a", "b", "c", "a", "d")
    ]
    assert records[0].pk == records[3].pk  # the replay returns the row written first
    assert _ledger(batched) == [
        (amount, overage, after - one_by_one.balance_micros + batched.balance_micros)
        for amount, overage, after in _ledger(one_by_one)
    ]
    assert [overage > 0 for _, overage, _ in _ledger(batched)] == [False, False, True, True]
    first, second = assert_ledger_matches(one_by_one), assert_ledger_matches(batched)
    assert (second.balance_micros, second.overage_micros, second.reserved_micros) == (
        first.balance_micros,
        first.overage_micros,
        first.reserved_micros,
    )
    assert UsageRecord.objects.filter(organization=batched).count() == 4


def test_a_batch_releases_every_hold_and_skips_what_was_settled_before(free_org):
    reports = [make_report(free_org, request_id=f"held-{i}") for i in range(5)]
    for report in reports:
        reserve_credits(
            organization_id=free_org.pk, request_id=report.request_id, amount_micros=900
        )
    settle_usage(reports[0])
    free_org.refresh_from_db()
    assert free_org.reserved_micros == 4 * 900

    settle_usage_batch(reports)

    org = assert_ledger_matches(free_org)
    assert org.reserved_micros == 0
    assert LedgerEntry.objects.filter(organization=org, kind="charge").count() == 5
    assert UsageRecord.objects.filter(organization=org).count() == 5


def test_a_batch_over_two_organizations_charges_each_its_own(free_org, pro_org):
    before = {org.pk: org.balance_micros for org in (free_org, pro_org)}
    reports = [
        _costing(free_org, 1_000, "f-1"),
        _costing(pro_org, 5_000, "p-1"),
        _costing(free_org, 2_000, "f-2"),
    ]

    records = settle_usage_batch(reports)

    assert [(r.request_id, r.cost_micros) for r in records] == [
        ("f-1", 1_000),
        ("p-1", 5_000),
        ("f-2", 2_000),
    ]
    assert assert_ledger_matches(free_org).balance_micros == before[free_org.pk] - 3_000
    assert assert_ledger_matches(pro_org).balance_micros == before[pro_org.pk] - 5_000


def test_statements_per_batch_do_not_grow_with_its_size(pro_org):
    def statements_for(count: int, tag: str) -> int:
        reports = [_costing(pro_org, 10, f"{tag}-{i}") for i in range(count)]
        with CaptureQueriesContext(connection) as captured:
            settle_usage_batch(reports)
        return len(_statements(captured.captured_queries))

    statements_for(1, "warm")
    # 25 rows: within one INSERT on SQLite too (Django splits at 999 parameters: ~45 usage rows,
    # ~27 call rows of traces, written by the same transaction).
    assert statements_for(25, "many") == statements_for(1, "one")
