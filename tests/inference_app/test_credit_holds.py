"""Credit slices: the gateway holds worst cases from one reservation per SLICE_REQUESTS
requests, never refuses what per-request reservations would admit, and leaves no hold behind."""

import asyncio

import pytest
from asgiref.sync import sync_to_async

from billing.credits import balance_adjust
from billing.ledger import ledger_sum_micros
from billing.models import Organization, Reservation
from inference_app.gateway import credit_holds, errors, resolve_api_caller, settlement
from inference_app.gateway.pipeline import start_chat_completion
from tests.inference_app.gateway_world import HELLO, TEXT_MODEL, ledger, post_chat

BODY = {"model": TEXT_MODEL, "messages": HELLO, "max_tokens": 1000}


@pytest.fixture
def reservations_made(monkeypatch):
    """The request ids credit_holds reserved in the database, in order."""
    made = []
    real = credit_holds.reserve_credits

    def counting(**kwargs):
        made.append(kwargs["request_id"])
        return real(**kwargs)

    monkeypatch.setattr(credit_holds, "reserve_credits", counting)
    return made


async def _slice_rows() -> int:
    return await Reservation.objects.filter(request_id__startswith="slice-").acount()


async def _worst_case(world) -> int:
    call = await start_chat_completion(await _caller(world), {**BODY, "stream": True})
    worst = call.worst_case_cost_micros()
    await call.aclose()
    await settlement.drain()
    return worst


async def _caller(world):
    return await resolve_api_caller(f"Bearer {world.raw_key}", "team-a/main")


async def _set_spendable(world, micros: int) -> None:
    """Adjust the balance (through the ledger) so that exactly `micros` can be held."""
    org = await Organization.objects.aget(pk=world.organization.pk)
    await sync_to_async(balance_adjust)(
        organization=org, amount_micros=micros - org.balance_micros, note="test"
    )


async def _assert_nothing_held(world) -> None:
    state = await ledger(world)  # drains settlements and idle slices first
    assert state["reservations"] == 0 and state["reserved"] == 0
    total = await sync_to_async(ledger_sum_micros)(organization_id=world.organization.pk)
    assert state["balance"] == total


async def test_ten_requests_make_one_reservation_and_leave_no_hold(
    world, fake_engine, reservations_made
):
    responses = [await post_chat(world, BODY) for _ in range(10)]

    assert [r.status_code for r in responses] == [200] * 10
    assert len(reservations_made) == 1 and reservations_made[0].startswith("slice-")
    assert await _slice_rows() == 1  # held until idle or drained
    await _assert_nothing_held(world)


async def test_an_idle_slice_is_released_without_being_drained(world, fake_engine, monkeypatch):
    monkeypatch.setattr(credit_holds, "IDLE_SECONDS", 0.05)
    assert (await post_chat(world, BODY)).status_code == 200
    assert await _slice_rows() == 1
    for _ in range(100):
        if await _slice_rows() == 0:
            break
        await asyncio.sleep(0.02)
    assert await _slice_rows() == 0


async def test_too_little_for_a_slice_is_held_per_request_and_refused_exactly_at_the_limit(
    world, fake_engine, reservations_made
):
    fake_engine.tokens = ["tok"] * 40
    worst = await _worst_case(world)
    await _set_spendable(world, 2 * worst + worst // 2)
    reservations_made.clear()
    caller = await _caller(world)

    held = [await start_chat_completion(caller, {**BODY, "stream": True}) for _ in range(2)]
    with pytest.raises(errors.GatewayError) as refused:
        await start_chat_completion(caller, {**BODY, "stream": True})

    assert refused.value.code == "insufficient_quota"
    # A slice tried once (and remembered as unaffordable), then one reservation per request,
    # the third refused.
    assert [rid.startswith("slice-") for rid in reservations_made] == [True, False, False, False]
    for call in held:
        await call.aclose()
    await _assert_nothing_held(world)


async def test_the_unused_room_of_a_closed_slice_is_given_back_before_a_refusal(
    world, fake_engine, monkeypatch
):
    fake_engine.tokens = ["tok"] * 40
    worst = await _worst_case(world)
    await _set_spendable(world, credit_holds.SLICE_REQUESTS * worst + worst // 2)
    caller = await _caller(world)
    first = await start_chat_completion(caller, {**BODY, "stream": True})  # opens a slice
    assert await _slice_rows() == 1

    # The slice closes (too old); a new one is not affordable; a hold of one's own is, once
    # the old slice's unused room is given back.
    monkeypatch.setattr(credit_holds, "MAX_AGE_SECONDS", 0.0)
    second = await start_chat_completion(caller, {**BODY, "stream": True})

    org = await Organization.objects.aget(pk=world.organization.pk)
    assert org.reserved_micros == 2 * worst
    for call in (first, second):
        await call.aclose()
    await _assert_nothing_held(world)
