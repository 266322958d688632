"""POST /v1/chat/completions through the real view, auth, limits and billing; fake engine."""

import json

import pytest
from asgiref.sync import sync_to_async

from billing.models import Organization, Reservation
from inference_app.gateway import settlement
from tests.inference_app.gateway_world import (
    HELLO,
    TEXT_MODEL,
    TWO_DEPLOYMENTS_MODEL,
    VISION_MODEL,
    ledger,
    post_chat,
    slots_in_use,
    usage_rows,
)

URL = "/v1/chat/completions"


async def read_sse(response) -> list[str]:
    raw = b"".join([part async for part in response.streaming_content]).decode()
    assert raw.endswith("\n\n")
    events = raw[:-2].split("\n\n")
    assert all(event.startswith("data: ") for event in events), raw
    return [event[len("data: ") :] for event in events]


async def test_non_streaming_completion_is_settled_once(world, fake_engine):
    before = await ledger(world)
    response = await post_chat(world, {"model": TEXT_MODEL, "messages": HELLO, "max_tokens": 50})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["id"] == response.headers["x-request-id"]
    assert body["model"] == TEXT_MODEL  # the catalog id, not the engine's name
    assert body["choices"][0]["message"]["content"] == "Hello there, friend!"
    assert body["usage"] == {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}

    [row] = await usage_rows()
    assert row.request_id == body["id"]
    assert (row.status, row.source, row.http_status) == ("ok", "api", 200)
    assert (row.team, row.project, row.model) == ("team-a", "main", TEXT_MODEL)
    assert row.deployment == "text-a" and row.api_key_prefix == world.key_prefix
    assert (row.prompt_tokens, row.completion_tokens) == (7, 5)
    assert not row.tokens_counted_by_gateway
    assert row.time_to_first_token_ms is not None and row.duration_ms >= 0
    # $1/M in, $2/M out: 7 + 10 micro-dollars, charged; nothing left held.
    after = await ledger(world)
    assert row.cost_micros == 17
    assert after["balance"] == before["balance"] - 17
    assert after["reservations"] == 0 and after["reserved"] == 0
    assert await slots_in_use(world) == (0, 0)


async def test_engine_gets_upstream_name_a_completion_cap_and_extra_fields(world, fake_engine):
    body = {"model": TEXT_MODEL, "messages": HELLO, "top_k": 5, "logit_bias": {"42": 1}}
    response = await post_chat(world, body)
    assert response.status_code == 200
    [(host, sent)] = fake_engine.requests
    assert host == "engine-a.test"
    assert sent["model"] == "up-text"
    assert sent["top_k"] == 5 and sent["logit_bias"] == {"42": 1}
    assert sent["stream"] is False and "stream_options" not in sent
    # No max_tokens asked: the gateway caps at what it reserved for.
    assert 0 < sent["max_tokens"] <= 4096


async def test_max_completion_tokens_is_sent_as_max_tokens(world, fake_engine):
    body = {"model": TEXT_MODEL, "messages": HELLO, "max_completion_tokens": 33}
    assert (await post_chat(world, body)).status_code == 200
    [(_, sent)] = fake_engine.requests
    assert sent["max_tokens"] == 33 and "max_completion_tokens" not in sent


async def test_streaming_sends_chunks_usage_and_done(world, fake_engine):
    body = {
        "model": TEXT_MODEL,
        "messages": HELLO,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    response = await post_chat(world, body)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    request_id = response.headers["x-request-id"]
    events = await read_sse(response)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert all(chunk["id"] == request_id and chunk["model"] == TEXT_MODEL for chunk in chunks)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "Hello there, friend!"
    usage_chunk = chunks[-1]
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["completion_tokens"] == 5
    assert [c for c in chunks if "usage" in c] == [usage_chunk]
    [(_, sent)] = fake_engine.requests
    assert sent["stream_options"] == {"include_usage": True}

    [row] = await usage_rows()
    assert row.request_id == request_id and row.status == "ok"
    assert (row.prompt_tokens, row.completion_tokens) == (7, 5)
    assert not row.tokens_counted_by_gateway
    assert await slots_in_use(world) == (0, 0)


async def test_streaming_without_include_usage_sends_no_usage_but_asks_the_engine(
    world, fake_engine
):
    response = await post_chat(world, {"model": TEXT_MODEL, "messages": HELLO, "stream": True})
    events = await read_sse(response)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert chunks and all("usage" not in chunk and chunk["choices"] for chunk in chunks)
    [(_, sent)] = fake_engine.requests
    assert sent["stream_options"] == {"include_usage": True}
    [row] = await usage_rows()
    assert row.completion_tokens == 5 and not row.tokens_counted_by_gateway


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_without_engine_usage_the_gateway_counts(world, fake_engine, stream):
    fake_engine.send_usage = False
    fake_engine.tokens = ["one", " two", " three", " four"]
    body = {"model": TEXT_MODEL, "messages": HELLO, "stream": stream}
    response = await post_chat(world, body)
    if stream:
        await read_sse(response)
    [row] = await usage_rows()
    assert row.tokens_counted_by_gateway
    # 18 ASCII characters at 4 per token (more than the 4 deltas): 5.
    assert row.completion_tokens == 5
    assert row.prompt_tokens > 0 and row.cost_micros > 0


async def test_engine_failing_mid_stream_sends_an_error_event_and_settles(world, fake_engine):
    fake_engine.behaviour["engine-a.test"] = "break"
    response = await post_chat(world, {"model": TEXT_MODEL, "messages": HELLO, "stream": True})
    assert response.status_code == 200
    events = await read_sse(response)
    assert "[DONE]" not in events
    error = json.loads(events[-1])
    assert set(error["error"]) == {"message", "type", "param", "code"}
    assert error["error"]["code"] == "server_error"
    [row] = await usage_rows()
    # What was produced before the break: "Hello there" (2 deltas, 11 characters: 3 tokens).
    assert row.status == "error" and row.completion_tokens == 3
    assert await slots_in_use(world) == (0, 0)
    await settlement.drain()
    assert await sync_to_async(Reservation.objects.count)() == 0


async def test_image_parts_are_accepted_for_a_vision_model(world, fake_engine):
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
    ]
    body = {"model": VISION_MODEL, "messages": [{"role": "user", "content": content}]}
    response = await post_chat(world, body)
    assert response.status_code == 200, response.content
    [(_, sent)] = fake_engine.requests
    assert sent["messages"][0]["content"][1]["image_url"]["url"].startswith("data:image/png")


async def test_failover_skips_a_deployment_that_refuses_connections(world, fake_engine):
    fake_engine.behaviour["engine-1.test"] = "refuse"
    for _ in range(2):
        response = await post_chat(world, {"model": TWO_DEPLOYMENTS_MODEL, "messages": HELLO})
        assert response.status_code == 200, response.content
    # The first request tried engine-1 (the heavy favourite), failed over; the second request
    # skipped it (marked unhealthy) and went straight to engine-2.
    assert fake_engine.hosts_called() == ["engine-2.test", "engine-2.test"]
    rows = await usage_rows()
    assert [row.deployment for row in rows] == ["two-second", "two-second"]
    from inference_app.models import Deployment

    first = await Deployment.objects.aget(name="two-first")
    assert not first.is_healthy and "connect" in first.last_error


async def test_default_project_when_no_project_header(world, fake_engine):
    response = await post_chat(world, {"model": TEXT_MODEL, "messages": HELLO}, project=None)
    assert response.status_code == 200
    [row] = await usage_rows()
    assert (row.team, row.project) == ("team-a", "main")


async def test_named_project_is_used(world, fake_engine):
    response = await post_chat(
        world, {"model": TEXT_MODEL, "messages": HELLO}, project="team-a/second"
    )
    assert response.status_code == 200
    [row] = await usage_rows()
    assert row.project == "second"


async def test_last_used_at_is_recorded(world, fake_engine):
    from inference_app.models import ApiKey

    assert (await ApiKey.objects.aget(prefix=world.key_prefix)).last_used_at is None
    await post_chat(world, {"model": TEXT_MODEL, "messages": HELLO})
    assert (await ApiKey.objects.aget(prefix=world.key_prefix)).last_used_at is not None


async def test_balance_is_charged_only_for_what_was_used(world, fake_engine):
    org_before = await Organization.objects.aget(pk=world.organization.pk)
    await post_chat(world, {"model": TEXT_MODEL, "messages": HELLO, "max_tokens": 1000})
    await settlement.drain()
    org_after = await Organization.objects.aget(pk=world.organization.pk)
    # Reserved for 1000 completion tokens (2000 micros), charged for 5 (+7 prompt).
    assert org_before.balance_micros - org_after.balance_micros == 17


async def test_a_busy_deployment_429_is_skipped_for_this_request_only(world, fake_engine):
    fake_engine.behaviour["engine-1.test"] = "http429"
    for _ in range(2):
        response = await post_chat(world, {"model": TWO_DEPLOYMENTS_MODEL, "messages": HELLO})
        assert response.status_code == 200, response.content
    # Busy is not sick: each request asks engine-1 first again, then falls over to engine-2.
    assert fake_engine.hosts_called() == ["engine-1.test", "engine-2.test"] * 2
    from inference_app.models import Deployment

    assert (await Deployment.objects.aget(name="two-first")).is_healthy
