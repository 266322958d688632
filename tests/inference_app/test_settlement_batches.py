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


async def test_a_bad_report_holds_back_no_other_and_is_retried_until_it_is_written(
    world, caplog, monkeypatch
):
    """One report the database refuses (its organization does not exist yet) among 50: the
    other 49 are written at once, with the real back-off in force; the bad one is not given up
    but retried, and written once it can be."""

    # The back-off in force, its ceiling lowered so that the test waits less for the retry.
    monkeypatch.setattr(settlement, "RETRY_MAX_SECONDS", 0.3)
    good = [await sync_to_async(make_report)(world.organization) for _ in range(49)]
    orphan = await sync_to_async(make_report)(world.organization, request_id="orphan")
    orphan = dataclasses.replace(orphan, organization_id=987_654)  # no such organization

    futures = [settlement.submit(report) for report in [*good[:20], orphan, *good[20:]]]
    good_futures = futures[:20] + futures[21:]
    started = asyncio.get_running_loop().time()
    await asyncio.wait_for(asyncio.gather(*good_futures), timeout=5)
    assert asyncio.get_running_loop().time() - started < 2.0  # no back-off on the good ones
    written = await sync_to_async(_request_ids)()  # not usage_rows(): it drains, which waits
    assert sorted(written) == sorted(r.request_id for r in good)
    assert not futures[20].done()
    assert settlement.pending_count() == 1

    # Some attempts later the organization exists: the report is written, once.
    await asyncio.sleep(0.5)
    assert not futures[20].done()
    await sync_to_async(_clone_organization)(world.organization, 987_654)
    await asyncio.wait_for(futures[20], timeout=10)
    assert await usage_rows_of("orphan") == 1
    assert settlement.pending_count() == 0
    assert "settling orphan failed; retrying" in caplog.text


def _request_ids() -> list[str]:
    from billing.models import UsageRecord

    return list(UsageRecord.objects.values_list("request_id", flat=True))


def _clone_organization(organization, pk: int) -> None:
    from billing.models import Organization

    Organization.objects.create(pk=pk, name="Late", slug=f"late-{pk}", plan_id=organization.plan_id)


async def usage_rows_of(request_id: str) -> int:
    from billing.models import UsageRecord

    return await UsageRecord.objects.filter(request_id=request_id).acount()
