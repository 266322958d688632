"""The gateway writes usage rows in batches after the response, and a bad report in a batch
does not keep the others from being written."""

import asyncio
import dataclasses

from asgiref.sync import sync_to_async

from billing.ledger import ledger_sum_micros as ledger_sum
from inference_app.gateway import settlement
from tests.billing.conftest import make_report
from tests.inference_app.gateway_world import HELLO, TEXT_MODEL, ledger, post_chat, usage_rows


async def test_requests_close_in_time_are_settled_in_batches_with_the_same_ledger(
    world, fake_engine, monkeypatch
):
    batch_sizes = []
    settle_now = settlement._settle_now

    def counting(reports):
        batch_sizes.append(len(reports))
        return settle_now(reports)

    monkeypatch.setattr(settlement, "_settle_now", counting)
    body = {"model": TEXT_MODEL, "messages": HELLO, "max_tokens": 5}

    # One after the other, as a client at concurrency 1 sends them: each response comes back
    # before its row is written, and rows of requests close in time share a transaction.
    responses = [await post_chat(world, body) for _ in range(12)]

    assert [r.status_code for r in responses] == [200] * 12
    rows = await usage_rows()
    assert sorted(row.request_id for row in rows) == sorted(
        r.headers["x-request-id"] for r in responses
    )
    assert sum(batch_sizes) == 12 and max(batch_sizes) > 1
    state = await ledger(world)
    ledger_sum_micros = sync_to_async(ledger_sum)
    assert state["reservations"] == 0 and state["reserved"] == 0
    assert state["balance"] == await ledger_sum_micros(organization_id=world.organization.pk)
    assert state["balance"] == world.organization.balance_micros - sum(
        row.cost_micros for row in rows
    )
    assert settlement.pending_count() == 0


async def test_a_report_that_cannot_be_settled_does_not_hold_back_its_batch(
    world, caplog, monkeypatch
):
    good = [await sync_to_async(make_report)(world.organization) for _ in range(3)]
    orphan = await sync_to_async(make_report)(world.organization, request_id="orphan")
    orphan = dataclasses.replace(orphan, organization_id=987_654)  # no such organization
    monkeypatch.setattr(settlement, "RETRY_DELAYS_SECONDS", (0.0, 0.0, 0.0))

    futures = [settlement.submit(report) for report in [good[0], orphan, *good[1:]]]
    await asyncio.wait_for(asyncio.gather(*futures), timeout=10)

    rows = await usage_rows()
    assert sorted(row.request_id for row in rows) == sorted(r.request_id for r in good)
    assert "could not settle usage, giving up" in caplog.text
    assert settlement.pending_count() == 0
