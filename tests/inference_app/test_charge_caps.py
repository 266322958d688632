"""A charge never passes the hold it was admitted with: streams cut near max_tokens, engines that
count more prompt tokens than the gateway's estimate. No overspend on Free, no cap overrun on
Pro."""

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from billing.credits import balance_adjust, credits_remaining_micros
from billing.models import Organization, Plan, Reservation, UsageRecord
from billing.organizations import organization_change_plan
from billing.quota import overage_this_month_micros
from inference_app.gateway import errors, resolve_api_caller, settlement
from inference_app.gateway.pipeline import start_chat_completion
from inference_app.models import Profile, Project
from tests.inference_app.gateway_world import HELLO, TEXT_MODEL, ledger

MAX_TOKENS = 200
STREAM = {
    "model": TEXT_MODEL,
    "messages": HELLO,
    "max_tokens": MAX_TOKENS,
    "stream": True,
}


@pytest.fixture
async def roomy_limits(world):
    await Project.objects.filter(pk=world.project.pk).aupdate(concurrency_limit=500)
    await Profile.objects.filter(user=world.user).aupdate(concurrency_limit=500)


async def _caller(world):
    return await resolve_api_caller(f"Bearer {world.raw_key}", "team-a/main")


async def _worst_case(world, body) -> int:
    call = await start_chat_completion(await _caller(world), body)
    worst = call.worst_case_cost_micros()
    await call.aclose()
    await settlement.drain()
    return worst


async def _organization(world) -> Organization:
    return await Organization.objects.select_related("plan").aget(pk=world.organization.pk)


async def _stream_then_close(caller, chunks_to_read: int) -> str | None:
    """Open a stream, read `chunks_to_read` chunks, close it (a client leaving); the request
    id, or None when refused for quota."""
    try:
        call = await start_chat_completion(caller, STREAM)
    except errors.GatewayError as exc:
        assert exc.code == "insufficient_quota"
        return None
    read = 0
    async for _ in call.chunks():
        read += 1
        if read >= chunks_to_read:
            break
    await call.aclose()
    return call.request_id


async def test_streams_closed_near_max_tokens_never_overspend_a_free_balance(
    world, fake_engine, roomy_limits
):
    # Long chunks: counted as characters / 4 they pass max_tokens well before the end.
    fake_engine.tokens = ["abcdefghij"] * 300
    fake_engine.send_usage = False  # a stream the client closes gets no usage from the engine
    worst = await _worst_case(world, STREAM)
    org = await _organization(world)
    await sync_to_async(balance_adjust)(
        organization=org, amount_micros=20 * worst - org.balance_micros, note="test"
    )
    caller = await _caller(world)

    ids = await asyncio.gather(*(_stream_then_close(caller, 190) for _ in range(60)))

    admitted = [request_id for request_id in ids if request_id]
    assert len(admitted) == 20
    state = await ledger(world)
    assert state["reserved"] == 0
    assert state["balance"] >= 0, "a Free balance went negative"
    rows = [row async for row in UsageRecord.objects.filter(request_id__in=admitted)]
    assert len(rows) == 20
    assert all(row.completion_tokens <= MAX_TOKENS for row in rows)
    assert all(row.cost_micros <= worst for row in rows)


async def test_an_engine_counting_huge_prompts_is_charged_the_hold_at_most(world, fake_engine):
    fake_engine.prompt_tokens = 10_000_000  # far past the estimate of a two-word prompt
    body = {"model": TEXT_MODEL, "messages": HELLO, "max_tokens": 10}
    worst = await _worst_case(world, body)
    org = await _organization(world)
    await sync_to_async(balance_adjust)(
        organization=org, amount_micros=3 * worst - org.balance_micros, note="test"
    )
    caller = await _caller(world)
    for _ in range(3):
        call = await start_chat_completion(caller, body)
        completion = await call.result()
        assert completion["usage"]["prompt_tokens"] == 10_000_000  # the engine's word, shown
    with pytest.raises(errors.GatewayError):
        await start_chat_completion(caller, body)
    state = await ledger(world)
    assert state["balance"] == 0 and state["reserved"] == 0
    assert await Reservation.objects.acount() == 0


async def test_a_pro_monthly_cap_is_never_overrun(world, fake_engine, roomy_limits):
    fake_engine.prompt_tokens = 10_000_000
    fake_engine.tokens = ["abcdefghij"] * 300
    org = await _organization(world)
    await sync_to_async(organization_change_plan)(organization=org, plan_code="pro")
    worst = await _worst_case(world, STREAM)
    # No credits left, and a cap of ten worst cases: the cap alone decides.
    org = await _organization(world)
    credits = await sync_to_async(credits_remaining_micros)(organization_id=org.pk)
    await sync_to_async(balance_adjust)(organization=org, amount_micros=-credits, note="test")
    await Plan.objects.filter(code="pro").aupdate(monthly_spend_cap_micros=10 * worst)
    org = await _organization(world)
    cap_left = 10 * worst - overage_this_month_micros(organization=org, now=timezone.now())
    caller = await _caller(world)

    ids = await asyncio.gather(*(_stream_then_close(caller, 190) for _ in range(30)))

    assert 1 <= len([i for i in ids if i]) <= cap_left // worst
    await settlement.drain()
    org = await _organization(world)
    overage = overage_this_month_micros(organization=org, now=timezone.now())
    assert overage <= 10 * worst, "the monthly cap was overrun"


async def test_an_engine_reporting_impossible_counts_still_gets_its_row_written(world, fake_engine):
    """Negative or huge counts from an engine are kept within what a usage row holds: the row
    is written (not retried for ever) and the hold released."""
    fake_engine.prompt_tokens = -5
    call = await start_chat_completion(
        await _caller(world), {"model": TEXT_MODEL, "messages": HELLO, "max_tokens": 10}
    )
    completion = await call.result()
    assert completion["usage"]["prompt_tokens"] == 0
    await settlement.drain(timeout=5)
    assert settlement.pending_count() == 0
    row = await UsageRecord.objects.aget(request_id=call.request_id)
    assert row.prompt_tokens == 0
    state = await ledger(world)
    assert state["reserved"] == 0
