"""A call's slots and reservation are released, and its usage settled once, on every path:
done, engine error, client disconnect (Django cancels the response), aclose by a consumer."""

import asyncio
import json

import pytest

from billing.models import Reservation
from inference_app.gateway import errors, resolve_api_caller, resolve_session_caller, settlement
from inference_app.gateway.pipeline import start_chat_completion
from inference_app.models import Project
from tests.inference_app.gateway_world import (
    HELLO,
    TEXT_MODEL,
    asgi_request,
    ledger,
    post_chat,
    slots_in_use,
    usage_rows,
)

URL = "/v1/chat/completions"
LONG = ["tok"] * 40


async def api_caller(world, project="team-a/main"):
    return await resolve_api_caller(f"Bearer {world.raw_key}", project)


async def test_client_disconnect_mid_stream_cancels_engine_frees_slot_and_settles(
    world, fake_engine
):
    fake_engine.tokens = LONG
    fake_engine.send_usage = False
    fake_engine.token_delay = 0.01
    body = {"model": TEXT_MODEL, "messages": HELLO, "stream": True, "max_tokens": 100}
    result = await asgi_request(
        "POST",
        URL,
        headers={**world.headers(), "content-type": "application/json"},
        body=json.dumps(body).encode(),
        disconnect_after_parts=5,
    )
    assert result.status == 200
    assert result.headers["content-type"].startswith("text/event-stream")
    assert 5 <= len(result.body_parts) < len(LONG)
    assert b"[DONE]" not in result.body
    # The engine's stream was closed before its end; nothing is left open or held.
    assert fake_engine.cancelled_streams == 1 and fake_engine.open_streams == 0
    assert await slots_in_use(world) == (0, 0)
    [row] = await usage_rows()
    assert row.request_id == result.headers["x-request-id"]
    assert row.status == "cancelled" and row.tokens_counted_by_gateway
    assert 5 <= row.completion_tokens < len(LONG)
    assert row.prompt_tokens > 0 and row.cost_micros > 0
    await settlement.drain()
    assert await Reservation.objects.acount() == 0


async def test_playground_style_aclose_settles_once(world, fake_engine):
    fake_engine.tokens = LONG
    caller = await resolve_session_caller(world.user, None)
    assert caller.source == "playground" and caller.project == "main"
    call = await start_chat_completion(
        caller, {"model": TEXT_MODEL, "messages": HELLO, "stream": True}
    )
    assert await slots_in_use(world) == (1, 1)
    seen = 0
    async for _chunk in call.chunks():
        seen += 1
        if seen == 3:
            break
    await call.aclose()
    await call.aclose()  # idempotent
    assert await slots_in_use(world) == (0, 0)
    [row] = await usage_rows()
    assert row.request_id == call.request_id and row.source == "playground"
    assert row.status == "cancelled" and row.api_key_prefix == ""
    assert fake_engine.cancelled_streams == 1


async def test_aclose_before_reading_anything_releases_everything(world, fake_engine):
    call = await start_chat_completion(
        await api_caller(world), {"model": TEXT_MODEL, "messages": HELLO, "stream": True}
    )
    await call.aclose()
    assert await slots_in_use(world) == (0, 0)
    await settlement.drain()
    assert await Reservation.objects.acount() == 0
    [row] = await usage_rows()
    assert row.status == "cancelled" and row.completion_tokens == 0


async def test_a_task_cancelled_while_streaming_still_settles(world, fake_engine):
    fake_engine.tokens = LONG
    fake_engine.token_delay = 0.05
    call = await start_chat_completion(
        await api_caller(world), {"model": TEXT_MODEL, "messages": HELLO, "stream": True}
    )
    got = []

    async def consume():
        async for chunk in call.chunks():
            got.append(chunk)

    task = asyncio.create_task(consume())
    while len(got) < 3:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await slots_in_use(world) == (0, 0)
    [row] = await usage_rows()
    assert row.status == "cancelled" and 3 <= row.completion_tokens < len(LONG)


async def test_completed_call_reports_usage_and_ttft(world, fake_engine):
    call = await start_chat_completion(
        await api_caller(world),
        {
            "model": TEXT_MODEL,
            "messages": HELLO,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    chunks = [chunk async for chunk in call.chunks()]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 5
    assert call.usage["completion_tokens"] == 5
    assert call.finish_reason == "stop" and call.time_to_first_token_ms is not None
    await call.aclose()  # after the end: a no-op
    [row] = await usage_rows()
    assert row.status == "ok"


async def test_one_usage_row_per_request_id(world, fake_engine):
    caller = await api_caller(world)
    call = await start_chat_completion(
        caller, {"model": TEXT_MODEL, "messages": HELLO}, request_id="chatcmpl-fixed-id"
    )
    await call.result()
    await call.aclose()
    [row] = await usage_rows()
    assert row.request_id == "chatcmpl-fixed-id"
    balance_after_first = (await ledger(world))["balance"]
    # A replay of the same id (a retry of an internal caller) is never billed twice.
    replay = await start_chat_completion(
        caller, {"model": TEXT_MODEL, "messages": HELLO}, request_id="chatcmpl-fixed-id"
    )
    await replay.result()
    assert len(await usage_rows()) == 1
    state = await ledger(world)
    assert state["balance"] == balance_after_first
    assert state["reservations"] == 0 and state["reserved"] == 0


# --- concurrency -------------------------------------------------------------------------------
async def test_project_concurrency_limit_refuses_with_retry_after_and_frees_on_end(
    world, fake_engine
):
    await Project.objects.filter(pk=world.project.pk).aupdate(concurrency_limit=1)
    fake_engine.tokens = LONG
    caller = await api_caller(world)
    held = await start_chat_completion(
        caller, {"model": TEXT_MODEL, "messages": HELLO, "stream": True}
    )
    before = await ledger(world)
    response = await post_chat(world, {"model": TEXT_MODEL, "messages": HELLO})
    assert response.status_code == 429
    error = response.json()["error"]
    assert error["code"] == "concurrency_limit_reached"
    assert error["message"] == "Concurrency limit reached for requests"
    assert int(response["Retry-After"]) >= 1
    assert await ledger(world) == before  # the refusal took nothing
    # Another project of the same user is not limited by this one.
    other = await post_chat(
        world, {"model": TEXT_MODEL, "messages": HELLO}, project="team-a/second"
    )
    assert other.status_code == 200
    _ = [chunk async for chunk in held.chunks()]
    assert await slots_in_use(world) == (0, 0)
    again = await post_chat(world, {"model": TEXT_MODEL, "messages": HELLO})
    assert again.status_code == 200


async def test_user_concurrency_limit_spans_projects(world, fake_engine):
    from inference_app.models import Profile

    await Profile.objects.filter(user=world.user).aupdate(concurrency_limit=1)
    held = await start_chat_completion(
        await api_caller(world), {"model": TEXT_MODEL, "messages": HELLO, "stream": True}
    )
    with pytest.raises(errors.GatewayError) as caught:
        await start_chat_completion(
            await api_caller(world, "team-a/second"), {"model": TEXT_MODEL, "messages": HELLO}
        )
    assert caught.value.status == 429 and caught.value.code == "concurrency_limit_reached"
    await held.aclose()


@pytest.mark.parametrize("behaviour", ["refuse", "http500", "http400", "break", "garbage"])
async def test_slots_are_released_on_engine_errors(world, fake_engine, behaviour):
    fake_engine.behaviour["engine-a.test"] = behaviour
    for stream in (False, True):
        response = await post_chat(
            world, {"model": TEXT_MODEL, "messages": HELLO, "stream": stream}
        )
        if stream and response.status_code == 200:
            _ = [part async for part in response.streaming_content]
        assert await slots_in_use(world) == (0, 0)
        await settlement.drain()
    assert await Reservation.objects.acount() == 0


async def test_unexpected_failure_is_500_in_our_shape_and_frees_the_slot(
    world, fake_engine, monkeypatch
):
    from inference_app.gateway import credit_holds

    def broken(requests):
        raise RuntimeError("database fell over")

    monkeypatch.setattr(credit_holds, "reserve_credits_batch", broken)
    response = await post_chat(world, {"model": TEXT_MODEL, "messages": HELLO})
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "server_error"
    assert response["x-request-id"].startswith("chatcmpl-")
    assert await slots_in_use(world) == (0, 0)
    assert fake_engine.requests == []


async def test_cancelled_while_reserving_leaves_no_hold_and_no_slot(
    world, fake_engine, monkeypatch
):
    """The reservation's thread cannot be stopped: a caller cancelled meanwhile must undo it."""
    import threading

    from inference_app.gateway import credit_holds

    entered, proceed = threading.Event(), threading.Event()
    real_reserve = credit_holds.reserve_credits_batch

    def slow_reserve(requests):
        entered.set()
        proceed.wait(5)
        return real_reserve(requests)

    monkeypatch.setattr(credit_holds, "reserve_credits_batch", slow_reserve)
    caller = await api_caller(world)
    task = asyncio.create_task(
        start_chat_completion(caller, {"model": TEXT_MODEL, "messages": HELLO})
    )
    while not entered.is_set():
        await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.sleep(0.05)
    proceed.set()  # the reservation completes after the caller is gone
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await slots_in_use(world) == (0, 0)
    state = await ledger(world)
    assert state["reservations"] == 0 and state["reserved"] == 0 and state["usage_rows"] == 0


async def test_an_answer_that_is_no_completion_is_500_and_charged_nothing(world, fake_engine):
    fake_engine.behaviour["engine-a.test"] = "garbage"
    before = await ledger(world)
    response = await post_chat(world, {"model": TEXT_MODEL, "messages": HELLO})
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "server_error"
    [row] = await usage_rows()
    assert row.status == "error" and row.cost_micros == 0
    after = await ledger(world)
    assert after["balance"] == before["balance"] and after["reserved"] == 0
    assert await slots_in_use(world) == (0, 0)


@pytest.mark.scaled
async def test_through_the_view_with_redis_slots(
    world, fake_engine, settings, redis_url, redis_key_prefix
):
    settings.REDIS_URL = redis_url
    settings.REDIS_KEY_PREFIX = redis_key_prefix
    await Project.objects.filter(pk=world.project.pk).aupdate(concurrency_limit=1)
    fake_engine.tokens = LONG
    held = await start_chat_completion(
        await api_caller(world), {"model": TEXT_MODEL, "messages": HELLO, "stream": True}
    )
    assert await slots_in_use(world) == (1, 1)
    refused = await post_chat(world, {"model": TEXT_MODEL, "messages": HELLO})
    assert refused.status_code == 429
    await held.aclose()
    assert await slots_in_use(world) == (0, 0)
    response = await post_chat(world, {"model": TEXT_MODEL, "messages": HELLO, "stream": True})
    assert response.status_code == 200
    _ = [part async for part in response.streaming_content]
    assert await slots_in_use(world) == (0, 0)


async def test_the_first_token_of_a_burst_is_passed_on_alone(world, fake_engine):
    """A fast engine's whole answer can arrive in one read: the first token still goes out
    first, alone, and the rest follows in one batch (one write downstream)."""
    fake_engine.behaviour["engine-a.test"] = "burst"
    call = await start_chat_completion(
        await api_caller(world), {"model": TEXT_MODEL, "messages": HELLO, "stream": True}
    )
    batches = [batch async for batch in call.chunk_batches()]

    contents = [
        [c["choices"][0]["delta"].get("content") for c in b if c["choices"]] for b in batches
    ]
    assert contents == [["Hello"], [" there", ",", " friend", "!", None]]
