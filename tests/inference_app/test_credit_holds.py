"""Reservations in group commits: every request holds its own worst case (so the gateway refuses
exactly where reserving one request at a time would), requests arriving together share a
transaction, and nothing stays held."""

import asyncio

import pytest
from asgiref.sync import sync_to_async

from billing.credits import balance_adjust
from billing.ledger import ledger_sum_micros
from billing.models import Organization, Reservation
from billing.quota import spendable_micros
from inference_app.gateway import credit_holds, errors, resolve_api_caller, settlement
from inference_app.gateway.pipeline import start_chat_completion
from inference_app.models import Profile, Project
from tests.inference_app.gateway_world import HELLO, TEXT_MODEL, ledger, post_chat

BODY = {"model": TEXT_MODEL, "messages": HELLO, "max_tokens": 1000}


@pytest.fixture
def transactions(monkeypatch):
    """The size of each reservation transaction credit_holds ran, in order."""
    sizes = []
    real = credit_holds.reserve_credits_batch

    def counting(requests):
        sizes.append(len(requests))
        return real(requests)

    monkeypatch.setattr(credit_holds, "reserve_credits_batch", counting)
    return sizes


@pytest.fixture
async def roomy_limits(world):
    """Concurrency far above what the tests open, so only money decides."""
    await Project.objects.filter(pk=world.project.pk).aupdate(concurrency_limit=200)
    await Profile.objects.filter(user=world.user).aupdate(concurrency_limit=200)


async def _caller(world):
    return await resolve_api_caller(f"Bearer {world.raw_key}", "team-a/main")


async def _worst_case(world) -> int:
    call = await start_chat_completion(await _caller(world), {**BODY, "stream": True})
    worst = call.worst_case_cost_micros()
    await call.aclose()
    await settlement.drain()
    return worst


async def _set_spendable(world, micros: int) -> None:
    """Adjust the balance (through the ledger) so that exactly `micros` can be held."""
    org = await Organization.objects.aget(pk=world.organization.pk)
    await sync_to_async(balance_adjust)(
        organization=org, amount_micros=micros - org.balance_micros, note="test"
    )


async def _spendable(world) -> int:
    org = await Organization.objects.select_related("plan").aget(pk=world.organization.pk)
    from django.utils import timezone

    return await sync_to_async(spendable_micros)(organization=org, now=timezone.now())


async def _assert_nothing_held(world) -> None:
    state = await ledger(world)  # drains settlements first
    assert state["reservations"] == 0 and state["reserved"] == 0
    total = await sync_to_async(ledger_sum_micros)(organization_id=world.organization.pk)
    assert state["balance"] == total
    assert credit_holds.holds_in_flight() == 0


async def test_one_request_is_one_reservation_of_its_own_with_its_write_ahead_record(
    world, fake_engine, transactions
):
    call = await start_chat_completion(await _caller(world), {**BODY, "stream": True})
    held = await Reservation.objects.aget(request_id=call.request_id)
    assert held.amount_micros == call.worst_case_cost_micros()
    assert (held.holder, held.model, held.team, held.project, held.source) == (
        credit_holds.holder_token(),
        TEXT_MODEL,
        "team-a",
        "main",
        "api",
    )
    assert held.prompt_tokens > 0 and held.user_id == world.user.pk
    assert transactions == [1]
    await call.aclose()
    await _assert_nothing_held(world)


async def test_requests_arriving_together_share_reservation_transactions(
    world, fake_engine, transactions, roomy_limits
):
    responses = await asyncio.gather(*(post_chat(world, BODY) for _ in range(20)))

    assert [r.status_code for r in responses] == [200] * 20
    assert sum(transactions) == 20
    assert len(transactions) < 20 and max(transactions) > 1
    await _assert_nothing_held(world)


async def test_refused_exactly_where_one_by_one_reservation_refuses_under_concurrency(
    world, fake_engine, roomy_limits
):
    """With settled requests behind it and a long stream holding its worst case, a burst of
    concurrent requests admits exactly as many as the balance can hold one by one: not one
    fewer (nothing is held that no request needs), not one more."""
    fake_engine.tokens = ["tok"] * 40
    worst = await _worst_case(world)
    await _set_spendable(world, 12 * worst + worst // 2)
    caller = await _caller(world)

    # Settled requests: charged and no longer held.
    for _ in range(3):
        assert (await post_chat(world, BODY)).status_code == 200
    await settlement.drain()
    # A long stream, holding its worst case until it ends.
    long_stream = await start_chat_completion(caller, {**BODY, "stream": True})

    room = await _spendable(world)
    expected = room // worst  # what reserving one at a time admits
    assert 5 <= expected <= 12
    attempts = await asyncio.gather(
        *(start_chat_completion(caller, {**BODY, "stream": True}) for _ in range(expected + 5)),
        return_exceptions=True,
    )
    admitted = [a for a in attempts if not isinstance(a, BaseException)]
    refused = [a for a in attempts if isinstance(a, BaseException)]
    assert len(admitted) == expected
    assert all(isinstance(r, errors.GatewayError) for r in refused)
    assert {r.code for r in refused} == {"insufficient_quota"}
    assert await _spendable(world) == room - expected * worst

    # One request ends: exactly one more fits, at once.
    await admitted[0].aclose()
    await settlement.drain()
    again = await start_chat_completion(caller, {**BODY, "stream": True})
    with pytest.raises(errors.GatewayError):
        await start_chat_completion(caller, {**BODY, "stream": True})

    for call in [*admitted[1:], again, long_stream]:
        await call.aclose()
    await _assert_nothing_held(world)


async def test_a_failed_reservation_transaction_fails_its_requests_and_holds_nothing(
    world, fake_engine, monkeypatch
):
    def broken(requests):
        raise RuntimeError("database fell over")

    monkeypatch.setattr(credit_holds, "reserve_credits_batch", broken)
    responses = await asyncio.gather(*(post_chat(world, BODY) for _ in range(3)))
    assert [r.status_code for r in responses] == [500] * 3
    assert {r.json()["error"]["code"] for r in responses} == {"server_error"}
    assert fake_engine.requests == []
    await _assert_nothing_held(world)


async def test_a_refused_request_never_reaches_an_engine(world, fake_engine, roomy_limits):
    """The reservation comes first: an organization that cannot pay gets no engine work."""
    worst = await _worst_case(world)
    await _set_spendable(world, 3 * worst)
    caller = await _caller(world)
    held = [await start_chat_completion(caller, {**BODY, "stream": True}) for _ in range(3)]
    engine_calls = len(fake_engine.requests)
    with pytest.raises(errors.GatewayError) as refused:
        await start_chat_completion(caller, {**BODY, "stream": True})
    assert refused.value.code == "insufficient_quota"
    assert len(fake_engine.requests) == engine_calls
    for call in held:
        await call.aclose()
    await _assert_nothing_held(world)


async def test_a_release_the_database_refuses_is_retried_until_done(
    world, fake_engine, monkeypatch
):
    """No engine takes the request, so its hold is released; the database refuses the first
    release: it is tried again, and this process vouches for the hold until it is gone."""
    fake_engine.behaviour["engine-a.test"] = "refuse"
    fake_engine.behaviour["engine-b.test"] = "refuse"
    monkeypatch.setattr(credit_holds, "RELEASE_RETRY_FIRST_SECONDS", 0.05)
    real_release = credit_holds.release_reservation
    failures = []

    def flaky_release(**kwargs):
        if not failures:
            failures.append(kwargs["request_id"])
            raise RuntimeError("database blip")
        return real_release(**kwargs)

    monkeypatch.setattr(credit_holds, "release_reservation", flaky_release)
    with pytest.raises(errors.GatewayError):
        await start_chat_completion(await _caller(world), {**BODY, "stream": True})
    assert failures and credit_holds.holds_in_flight() == 1
    for _ in range(100):
        if credit_holds.holds_in_flight() == 0:
            break
        await asyncio.sleep(0.02)
    assert credit_holds.holds_in_flight() == 0
    await _assert_nothing_held(world)
