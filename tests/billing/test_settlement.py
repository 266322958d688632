"""Settlement: one charge per request equal to tokens x the prices that applied; replays are no-ops."""

import pytest

from billing.ledger import ledger_sum_micros
from billing.models import LedgerEntry, UsageRecord
from billing.quota import reserve_credits
from billing.usage import settle_usage, usage_cost_micros
from tests.billing.conftest import make_report

pytestmark = pytest.mark.django_db


def settle_after_reserving(org, report, worst_case_micros):
    reserve_credits(
        organization_id=org.pk, request_id=report.request_id, amount_micros=worst_case_micros
    )
    return settle_usage(report)


@pytest.mark.parametrize(
    "status, prompt_tokens, completion_tokens",
    [
        ("ok", 1_234, 567),  # non-streamed or streamed, finished: usage from the engine
        ("ok", 9, 3_001),  # streamed with a long answer
        ("cancelled", 800, 17),  # client disconnected: charged for what was produced
    ],
)
def test_one_charge_equal_to_tokens_times_the_price_that_applied(
    free_org, status, prompt_tokens, completion_tokens
):
    report = make_report(
        free_org,
        status=status,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        input_price_micros=220_000,
        output_price_micros=880_000,
    )
    expected = -(-(prompt_tokens * 220_000 + completion_tokens * 880_000) // 1_000_000)
    before = free_org.balance_micros
    record = settle_after_reserving(free_org, report, worst_case_micros=100_000)
    assert record.cost_micros == expected
    assert (record.input_price_micros, record.output_price_micros) == (220_000, 880_000)
    charges = LedgerEntry.objects.filter(organization=free_org, kind="charge")
    assert [(c.request_id, c.amount_micros) for c in charges] == [(report.request_id, -expected)]
    free_org.refresh_from_db()
    assert (
        free_org.balance_micros
        == before - expected
        == ledger_sum_micros(organization_id=free_org.pk)
    )
    assert free_org.reserved_micros == 0  # the rest of the worst case is released


def test_replaying_a_settlement_does_not_charge_again(free_org):
    report = make_report(free_org, prompt_tokens=10_000, completion_tokens=10_000)
    first = settle_after_reserving(free_org, report, worst_case_micros=50_000)
    free_org.refresh_from_db()
    balance = free_org.balance_micros
    # The same request settled again (a retry, a replayed message), even with other numbers.
    again = settle_usage(make_report(free_org, request_id=report.request_id, prompt_tokens=99_999))
    assert again.pk == first.pk and again.cost_micros == first.cost_micros
    free_org.refresh_from_db()
    assert free_org.balance_micros == balance
    assert UsageRecord.objects.filter(request_id=report.request_id).count() == 1
    assert LedgerEntry.objects.filter(request_id=report.request_id).count() == 1


def test_a_price_change_never_reprices_history(free_org):
    old = settle_usage(
        make_report(
            free_org, prompt_tokens=1_000_000, completion_tokens=0, input_price_micros=100_000
        )
    )
    new = settle_usage(
        make_report(
            free_org, prompt_tokens=1_000_000, completion_tokens=0, input_price_micros=300_000
        )
    )
    old.refresh_from_db()
    assert (old.cost_micros, new.cost_micros) == (100_000, 300_000)


def test_cost_rounds_up_to_the_next_micro_dollar():
    # 1 token at 0.10 USD per million tokens is 0.1 micro-dollar: charged 1, never 0.
    assert (
        usage_cost_micros(
            prompt_tokens=1, completion_tokens=0, input_price_micros=100_000, output_price_micros=0
        )
        == 1
    )
    assert (
        usage_cost_micros(
            prompt_tokens=0, completion_tokens=0, input_price_micros=100_000, output_price_micros=9
        )
        == 0
    )


def test_a_failed_request_without_tokens_charges_nothing(free_org):
    report = make_report(free_org, status="error", prompt_tokens=0, completion_tokens=0)
    before = free_org.balance_micros
    settle_after_reserving(free_org, report, worst_case_micros=5_000)
    free_org.refresh_from_db()
    assert free_org.balance_micros == before and free_org.reserved_micros == 0
    assert not LedgerEntry.objects.filter(organization=free_org, kind="charge").exists()
