"""The money path's guarantees in billing: write-ahead reservations, `lost` settlement of a dead
process's requests, charges capped at their hold, reservations in groups decided as if alone,
and no overage (so no invoice) on plans without it."""

import dataclasses
from datetime import timedelta

import pytest
from django.utils import timezone

from billing import tasks
from billing.credits import balance_adjust, credits_remaining_micros
from billing.invoices import invoice_issue
from billing.ledger import ledger_sum_micros, month_start
from billing.lost import LOST_AFTER, reservation_holder_beat, reservations_settle_lost
from billing.models import LedgerEntry, Organization, Reservation, UsageRecord
from billing.quota import HoldRequest, reserve_credits, reserve_credits_batch
from billing.usage import settle_usage
from tests.billing.conftest import make_org, make_report

pytestmark = pytest.mark.django_db

MODEL = "meta-llama/Llama-3.1-8B-Instruct"


def hold_request(org, request_id, amount, *, holder="dead-process", prompt_tokens=1_000):
    return HoldRequest(
        request_id=request_id,
        organization_id=org.pk,
        amount_micros=amount,
        holder=holder,
        user_id=None,
        api_key_prefix="ys-abc",
        team="team-a",
        project="proj-a",
        model=MODEL,
        source="api",
        prompt_tokens=prompt_tokens,
        input_price_micros=200_000,
        output_price_micros=800_000,
    )


def age(request_id: str, by: timedelta) -> None:
    Reservation.objects.filter(request_id=request_id).update(created_at=timezone.now() - by)


def assert_books_balance(org: Organization) -> Organization:
    org.refresh_from_db()
    assert org.balance_micros == ledger_sum_micros(organization_id=org.pk)
    assert org.reserved_micros == sum(
        Reservation.objects.filter(organization=org).values_list("amount_micros", flat=True)
    )
    return org


def test_a_dead_holders_requests_are_settled_as_lost_for_their_prompt(free_org):
    reserve_credits_batch([hold_request(free_org, "req-dead", 5_000)])
    age("req-dead", LOST_AFTER + timedelta(seconds=1))
    before = free_org.balance_micros

    assert tasks.settle_lost_requests() == 1

    row = UsageRecord.objects.get(request_id="req-dead")
    assert (row.status, row.error_code, row.model, row.team, row.project) == (
        "lost",
        "process_lost",
        MODEL,
        "team-a",
        "proj-a",
    )
    assert (row.prompt_tokens, row.completion_tokens, row.tokens_counted_by_gateway) == (
        1_000,
        0,
        True,
    )
    assert row.cost_micros == 200  # 1,000 prompt tokens at $0.20 per million
    org = assert_books_balance(free_org)
    assert org.reserved_micros == 0
    assert org.balance_micros == before - 200
    assert LedgerEntry.objects.get(request_id="req-dead").amount_micros == -200
    # Run again: nothing left, nothing charged twice.
    assert reservations_settle_lost() == 0
    assert UsageRecord.objects.filter(request_id="req-dead").count() == 1


def test_live_holders_and_young_reservations_are_left_alone(free_org):
    reserve_credits_batch(
        [
            hold_request(free_org, "req-long-stream", 5_000, holder="alive"),
            hold_request(free_org, "req-young", 5_000, holder="dead-process"),
        ]
    )
    age("req-long-stream", LOST_AFTER * 3)  # a long request of a process that still beats
    reservation_holder_beat(token="alive")

    assert reservations_settle_lost() == 0
    assert Reservation.objects.count() == 2

    # The holder stops beating: its request is lost once it has been silent for LOST_AFTER.
    later = timezone.now() + LOST_AFTER + timedelta(seconds=1)
    assert reservations_settle_lost(now=later) == 2
    assert set(UsageRecord.objects.values_list("status", flat=True)) == {"lost"}
    assert assert_books_balance(free_org).reserved_micros == 0


def test_a_hold_without_write_ahead_record_is_only_released(free_org):
    reserve_credits(organization_id=free_org.pk, request_id="slice-old", amount_micros=7_000)
    age("slice-old", LOST_AFTER * 2)
    assert reservations_settle_lost() == 1
    assert not UsageRecord.objects.exists()
    assert assert_books_balance(free_org).reserved_micros == 0


def test_a_request_settled_before_the_sweep_is_not_charged_again(free_org):
    reserve_credits_batch([hold_request(free_org, "req-race", 5_000)])
    report = make_report(free_org, request_id="req-race")
    age("req-race", LOST_AFTER * 2)
    settle_usage(report)
    assert reservations_settle_lost() == 0
    assert UsageRecord.objects.get(request_id="req-race").status == "ok"


def test_a_charge_never_passes_its_hold(free_org):
    """An engine that counts far more prompt tokens than the gateway's estimate."""
    reserve_credits(organization_id=free_org.pk, request_id="req-big", amount_micros=1_000)
    report = dataclasses.replace(
        make_report(free_org, request_id="req-big", prompt_tokens=10_000_000),
        max_cost_micros=1_000,
    )
    record = settle_usage(report)
    assert record.cost_micros == 1_000
    assert record.prompt_tokens == 10_000_000  # what the engine said, kept for the record
    org = assert_books_balance(free_org)
    assert org.balance_micros == 5_000_000 - 1_000


def test_group_reservations_decide_each_request_as_if_alone(free_org):
    """Balance 5,000,000 micros: requests of 2,000,000 fit twice; a smaller one after a refused
    one still fits; a request id given twice holds once."""
    batch = [
        hold_request(free_org, "a", 2_000_000),
        hold_request(free_org, "b", 2_000_000),
        hold_request(free_org, "c", 2_000_000),  # refused: 1,000,000 left
        hold_request(free_org, "d", 600_000),  # fits in what is left
        hold_request(free_org, "a", 2_000_000),  # a replay of "a": held already
        hold_request(free_org, "e", 600_000),  # refused: 400,000 left
    ]
    assert reserve_credits_batch(batch) == [True, True, False, True, True, False]
    org = assert_books_balance(free_org)
    assert org.reserved_micros == 4_600_000
    assert set(Reservation.objects.values_list("request_id", flat=True)) == {"a", "b", "d"}

    # The same requests reserved one by one on a twin organization decide the same way.
    twin = make_org(plan_code="free")
    alone = [
        reserve_credits_batch(
            [dataclasses.replace(r, organization_id=twin.pk, request_id=f"twin-{r.request_id}")]
        )[0]
        for r in batch
    ]
    assert alone == [True, True, False, True, True, False]


def test_write_ahead_fields_are_kept_on_the_reservation(free_org):
    reserve_credits_batch([hold_request(free_org, "req-w", 5_000, holder="proc-1")])
    held = Reservation.objects.get(request_id="req-w")
    assert (held.holder, held.model, held.prompt_tokens, held.api_key_prefix, held.source) == (
        "proc-1",
        MODEL,
        1_000,
        "ys-abc",
        "api",
    )


def test_a_free_organization_is_never_invoiced_for_overage(free_org):
    """Charges that no grant covers (the grant used up; the balance topped up by an operator's
    adjustment) come out of the balance: no overage, no invoice."""
    balance_adjust(organization=free_org, amount_micros=3_000_000, note="goodwill")
    for n in range(3):
        settle_usage(
            make_report(
                free_org,
                request_id=f"req-free-{n}",
                prompt_tokens=5_000_000,  # $1.00 a request at $0.20 per million
                completion_tokens=1_000_000,  # $0.80
            )
        )
    assert credits_remaining_micros(organization_id=free_org.pk) == 0
    charges = LedgerEntry.objects.filter(organization=free_org, kind="charge")
    assert charges.count() == 3
    assert all(entry.overage_micros == 0 for entry in charges)
    free_org.refresh_from_db()
    assert free_org.overage_micros == 0
    assert invoice_issue(organization_id=free_org.pk, month=month_start(timezone.now())) is None
    assert_books_balance(free_org)


def test_a_pro_organization_is_still_invoiced_for_overage(pro_org):
    remaining = credits_remaining_micros(organization_id=pro_org.pk)
    settle_usage(
        make_report(
            pro_org, prompt_tokens=(remaining // 200_000 + 1) * 1_000_000, completion_tokens=0
        )
    )
    invoice = invoice_issue(organization_id=pro_org.pk, month=month_start(timezone.now()))
    assert invoice is not None and invoice.overage_micros == 200_000


def test_a_lost_report_whose_hold_was_released_meanwhile_charges_nothing(free_org):
    """The sweep read a dead-looking reservation; before it settled, the hold was released
    (its process was alive after all, and the request was never answered)."""
    from billing.lost import _lost_report
    from billing.quota import release_reservation
    from billing.usage import settle_usage_batch

    reserve_credits_batch([hold_request(free_org, "req-late", 5_000)])
    report = _lost_report(Reservation.objects.get(request_id="req-late"), now=timezone.now())
    release_reservation(request_id="req-late")
    assert settle_usage_batch([report]) == [None]
    assert not UsageRecord.objects.filter(request_id="req-late").exists()
    org = assert_books_balance(free_org)
    assert org.balance_micros == 5_000_000
