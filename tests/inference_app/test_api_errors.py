"""Every refusal of /v1/chat/completions: its status, body and code, and nothing taken.

"Nothing taken" is checked the same way for each: no usage row, no reservation, the balance
unchanged, no concurrency slot held, and (where the request is refused before routing) no call
reaching the engine.
"""

import json

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient

from billing.models import Organization
from inference_app.accounts import api_key_revoke
from inference_app.gateway import settlement
from inference_app.models import ApiKey, Profile, Project
from tests.inference_app.gateway_world import (
    HELLO,
    TEXT_CONTEXT,
    TEXT_MODEL,
    UNDEPLOYED_MODEL,
    VISION_MODEL,
    asgi_request,
    ledger,
    post_chat,
    slots_in_use,
)

URL = "/v1/chat/completions"
PIXEL = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgAAIAAAUAAeIhvDMAAAAASUVORK5CYII="


def assert_error(response, status: int, code: str | None, message: str | None = None) -> dict:
    assert response.status_code == status, response.content
    assert response["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["error"]
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    if code is not None:
        assert error["code"] == code, error
    if message is not None:
        assert error["message"] == message
    return error


# --- 401 -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ys-short", "Basic abc", "Bearer sk-not-ours-0000000000000000"],
)
async def test_missing_or_malformed_key_is_401(world, fake_engine, nothing_taken, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    response = await post_chat(None, {"model": TEXT_MODEL, "messages": HELLO}, headers=headers)
    assert_error(response, 401, "invalid_api_key", "Invalid Authentication")
    assert fake_engine.requests == []


async def test_forged_key_with_a_known_prefix_is_401(world, fake_engine):
    # The real key first, so the prefix is cached: the hash must still be compared.
    assert (await post_chat(world, {"model": TEXT_MODEL, "messages": HELLO})).status_code == 200
    before = await ledger(world)
    forged = world.raw_key[:12] + "x" * 30
    response = await post_chat(
        None,
        {"model": TEXT_MODEL, "messages": HELLO},
        headers={"Authorization": f"Bearer {forged}"},
    )
    assert_error(response, 401, "invalid_api_key")
    assert await ledger(world) == before


async def test_revoked_key_is_401(world, fake_engine):
    key = await ApiKey.objects.aget(prefix=world.key_prefix)
    await sync_to_async(api_key_revoke)(api_key=key)
    before = await ledger(world)
    response = await post_chat(world, {"model": TEXT_MODEL, "messages": HELLO})
    assert_error(response, 401, "invalid_api_key", "Invalid Authentication")
    assert await ledger(world) == before


async def test_revocation_takes_effect_at_once_though_the_key_was_cached(world, fake_engine):
    assert (await post_chat(world, {"model": TEXT_MODEL, "messages": HELLO})).status_code == 200
    await settlement.drain()
    key = await ApiKey.objects.aget(prefix=world.key_prefix)
    await sync_to_async(api_key_revoke)(api_key=key)
    # No waiting for GATEWAY_CACHE_SECONDS: this process forgot the key when it was revoked.
    response = await post_chat(world, {"model": TEXT_MODEL, "messages": HELLO})
    assert_error(response, 401, "invalid_api_key")


@pytest.mark.parametrize(
    "project",
    ["team-b/secret", "team-a/nope", "nope/main", "team-a", "team-a/main/extra", "/main"],
    ids=["another-teams-project", "unknown-project", "unknown-team", "no-slash", "extra", "empty"],
)
async def test_project_the_user_cannot_use_is_401(world, fake_engine, nothing_taken, project):
    response = await post_chat(world, {"model": TEXT_MODEL, "messages": HELLO}, project=project)
    assert_error(response, 401, "invalid_api_key", "Invalid Authentication")
    assert fake_engine.requests == []


async def test_user_without_any_project_is_401(world, fake_engine, nothing_taken):
    await Project.objects.filter(team__name="team-a").adelete()
    await Profile.objects.filter(user=world.user).aupdate(default_project=None)
    response = await post_chat(world, {"model": TEXT_MODEL, "messages": HELLO}, project=None)
    assert_error(response, 401, "invalid_api_key")


# --- 403 -------------------------------------------------------------------------------------
async def test_blocked_country_is_403_before_anything_else(world, fake_engine, settings):
    settings.BLOCKED_COUNTRIES = ["XX", "YY"]
    before = await ledger(world)
    # Even without a key: the geo check comes first.
    for headers in ({"CF-IPCountry": "xx"}, {**world.headers(), "CF-IPCountry": "XX"}):
        response = await post_chat(None, {"model": TEXT_MODEL, "messages": HELLO}, headers=headers)
        assert_error(
            response,
            403,
            "unsupported_country_region_territory",
            "Country, region, or territory not supported",
        )
    assert await ledger(world) == before
    # Another country is served.
    response = await post_chat(
        world, {"model": TEXT_MODEL, "messages": HELLO}, headers={"CF-IPCountry": "FR"}
    )
    assert response.status_code == 200


async def test_models_endpoint_is_geo_blocked_too(world, fake_engine, settings):
    settings.BLOCKED_COUNTRIES = ["XX"]
    response = await AsyncClient().get(
        "/v1/models", headers={**world.headers(), "CF-IPCountry": "XX"}
    )
    assert_error(response, 403, "unsupported_country_region_territory")


# --- 400 -------------------------------------------------------------------------------------
IMAGE_CONTENT = [
    {"type": "text", "text": "What is this?"},
    {"type": "image_url", "image_url": {"url": PIXEL}},
]
BAD_BODIES = {
    "missing-model": ({"messages": HELLO}, "model"),
    "missing-messages": ({"model": TEXT_MODEL}, "messages"),
    "model-not-a-string": ({"model": 5, "messages": HELLO}, "model"),
    "messages-not-a-list": ({"model": TEXT_MODEL, "messages": "hello"}, "messages"),
    "empty-messages": ({"model": TEXT_MODEL, "messages": []}, "messages"),
    "message-without-role": ({"model": TEXT_MODEL, "messages": [{"content": "hi"}]}, "messages"),
    "unknown-role": (
        {"model": TEXT_MODEL, "messages": [{"role": "wizard", "content": "hi"}]},
        "messages",
    ),
    "unknown-part-type": (
        {
            "model": TEXT_MODEL,
            "messages": [{"role": "user", "content": [{"type": "video", "video": "x"}]}],
        },
        "messages",
    ),
    "temperature-a-string": (
        {"model": TEXT_MODEL, "messages": HELLO, "temperature": "hot"},
        "temperature",
    ),
    "temperature-out-of-range": (
        {"model": TEXT_MODEL, "messages": HELLO, "temperature": 3},
        "temperature",
    ),
    "max-tokens-a-string": (
        {"model": TEXT_MODEL, "messages": HELLO, "max_tokens": "ten"},
        "max_tokens",
    ),
    "max-tokens-a-float": (
        {"model": TEXT_MODEL, "messages": HELLO, "max_tokens": 1.5},
        "max_tokens",
    ),
    "max-tokens-zero": ({"model": TEXT_MODEL, "messages": HELLO, "max_tokens": 0}, "max_tokens"),
    "stream-a-string": ({"model": TEXT_MODEL, "messages": HELLO, "stream": "yes"}, "stream"),
    "n-a-bool": ({"model": TEXT_MODEL, "messages": HELLO, "n": True}, "n"),
    "stop-too-many": ({"model": TEXT_MODEL, "messages": HELLO, "stop": list("abcde")}, "stop"),
    "max-tokens-beyond-context": (
        {"model": TEXT_MODEL, "messages": HELLO, "max_tokens": TEXT_CONTEXT + 1},
        "max_tokens",
    ),
    "prompt-beyond-context": (
        {
            "model": TEXT_MODEL,
            "messages": [{"role": "user", "content": "word " * 3 * TEXT_CONTEXT}],
        },
        "messages",
    ),
    "image-for-a-text-model": (
        {"model": TEXT_MODEL, "messages": [{"role": "user", "content": IMAGE_CONTENT}]},
        "messages",
    ),
    "image-without-url": (
        {
            "model": VISION_MODEL,
            "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}],
        },
        "messages",
    ),
}


@pytest.mark.parametrize("case", list(BAD_BODIES))
async def test_invalid_request_is_400(world, fake_engine, nothing_taken, case):
    body, param = BAD_BODIES[case]
    response = await post_chat(world, body)
    error = assert_error(response, 400, "invalid_request_error")
    assert error["type"] == "invalid_request_error"
    assert (error["param"] or "").startswith(param), error
    assert fake_engine.requests == []


async def test_max_tokens_beyond_the_context_window_says_so(world, fake_engine, nothing_taken):
    response = await post_chat(world, {"model": TEXT_MODEL, "messages": HELLO, "max_tokens": 10**7})
    error = assert_error(response, 400, "invalid_request_error")
    assert "maximum context length is 2048 tokens" in error["message"]


async def test_image_for_a_text_model_says_so(world, fake_engine, nothing_taken):
    body = {"model": TEXT_MODEL, "messages": [{"role": "user", "content": IMAGE_CONTENT}]}
    error = assert_error(await post_chat(world, body), 400, "invalid_request_error")
    assert "does not support image" in error["message"]


@pytest.mark.parametrize("raw", [b"{not json", b"", b"[1, 2]", b'"text"', b"\xff\xfe"], ids=repr)
async def test_malformed_json_is_400(world, fake_engine, nothing_taken, raw):
    assert_error(await post_chat(world, raw=raw), 400, "invalid_request_error")


# --- 404 -------------------------------------------------------------------------------------
@pytest.mark.parametrize("model", ["no-such/model", UNDEPLOYED_MODEL])
async def test_unknown_or_undeployed_model_is_404(world, fake_engine, nothing_taken, model):
    error = assert_error(
        await post_chat(world, {"model": model, "messages": HELLO}), 404, "model_not_found"
    )
    assert error["param"] == "model"


async def test_disabled_deployment_means_404(world, fake_engine, nothing_taken):
    from inference_app.models import Deployment

    await Deployment.objects.filter(name="text-a").aupdate(is_enabled=False)
    assert_error(
        await post_chat(world, {"model": TEXT_MODEL, "messages": HELLO}), 404, "model_not_found"
    )


async def test_unknown_api_path_and_wrong_method_answer_in_our_shape(world, fake_engine):
    assert_error(await AsyncClient().get("/v1/nope", headers=world.headers()), 404, "unknown_url")
    assert_error(await AsyncClient().get(URL, headers=world.headers()), 405, "method_not_allowed")


# --- 413 -------------------------------------------------------------------------------------
async def test_body_over_the_limit_is_413(world, fake_engine, nothing_taken, settings):
    settings.MAX_REQUEST_BYTES = 10_000
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    body = {"model": TEXT_MODEL, "messages": [{"role": "user", "content": "x" * 20_000}]}
    assert_error(await post_chat(world, body), 413, "request_too_large")


async def test_declared_length_over_the_limit_is_413(world, fake_engine, nothing_taken, settings):
    # Django's own check is off here; the gateway refuses on the header alone.
    settings.MAX_REQUEST_BYTES = 10_000
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = None
    result = await asgi_request(
        "POST",
        URL,
        headers={**world.headers(), "content-type": "application/json", "content-length": "99999"},
        body=json.dumps({"model": TEXT_MODEL, "messages": HELLO}).encode(),
    )
    assert result.status == 413
    assert json.loads(result.body)["error"]["code"] == "request_too_large"


async def test_actual_size_over_the_limit_is_413_whatever_the_header(
    world, fake_engine, nothing_taken, settings
):
    settings.MAX_REQUEST_BYTES = 10_000
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = None
    body = {"model": TEXT_MODEL, "messages": [{"role": "user", "content": "x" * 20_000}]}
    result = await asgi_request(
        "POST",
        URL,
        headers={**world.headers(), "content-type": "application/json"},  # no Content-Length
        body=json.dumps(body).encode(),
    )
    assert result.status == 413
    assert json.loads(result.body)["error"]["code"] == "request_too_large"


async def test_asgi_edge_refuses_a_declared_huge_body_without_reading_it(
    world, fake_engine, nothing_taken, settings
):
    settings.MAX_REQUEST_BYTES = 10_000
    result = await asgi_request(
        "POST",
        URL,
        headers={**world.headers(), "content-type": "application/json", "content-length": "10001"},
        body_parts=[b"x" * 100],  # what a client sent before the server answered
    )
    assert result.status == 413
    assert result.messages_received == 0  # refused on the header alone
    assert json.loads(result.body)["error"]["code"] == "request_too_large"


async def test_asgi_edge_cuts_off_a_chunked_body_past_the_limit(
    world, fake_engine, nothing_taken, settings
):
    settings.MAX_REQUEST_BYTES = 10_000
    result = await asgi_request(
        "POST",
        URL,
        headers={**world.headers(), "content-type": "application/json"},
        body_parts=[b"x" * 6_000, b"x" * 6_000, b"x" * 6_000],
    )
    assert result.status == 413
    assert result.messages_received == 2  # the third part was never read
    assert json.loads(result.body)["error"]["code"] == "request_too_large"


async def test_asgi_edge_lets_normal_requests_through(world, fake_engine, settings):
    body = json.dumps({"model": TEXT_MODEL, "messages": HELLO}).encode()
    result = await asgi_request(
        "POST",
        URL,
        headers={**world.headers(), "content-type": "application/json"},
        body_parts=[body[:10], body[10:]],
    )
    assert result.status == 200, result.body
    assert json.loads(result.body)["object"] == "chat.completion"


# --- 429 -------------------------------------------------------------------------------------
async def test_no_credits_is_quota_error_that_must_not_be_retried(world, fake_engine):
    await Organization.objects.filter(pk=world.organization.pk).aupdate(balance_micros=0)
    before = await ledger(world)
    response = await post_chat(world, {"model": TEXT_MODEL, "messages": HELLO})
    assert_error(
        response,
        429,
        "insufficient_quota",
        "You exceeded your current quota, please check your plan and billing details",
    )
    assert response["x-should-retry"] == "false"
    assert await ledger(world) == before
    assert await slots_in_use(world) == (0, 0)
    assert fake_engine.requests == []


# --- 5xx -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "behaviour,status,code",
    [
        ("refuse", 503, "model_unavailable"),
        ("http503", 503, "engine_overloaded"),
        ("http500", 500, "server_error"),
    ],
)
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_engine_down_or_failing_is_5xx_and_costs_nothing(
    world, fake_engine, nothing_taken, behaviour, status, code, stream
):
    fake_engine.behaviour["engine-a.test"] = behaviour
    response = await post_chat(world, {"model": TEXT_MODEL, "messages": HELLO, "stream": stream})
    error = assert_error(response, status, code)
    if code == "engine_overloaded":
        assert error["message"] == "The engine is currently overloaded, please try again later"
    elif code == "model_unavailable":
        # Down, not busy: the caller is not told to retry an engine that does not answer.
        assert error["message"] == f"The model `{TEXT_MODEL}` is unavailable right now."
    else:
        # The engine's own message (the fake says "boom"): when the request caused the error,
        # it tells the caller how.
        assert error["message"] == "boom"


async def test_engine_refusing_the_request_is_400_with_its_message(
    world, fake_engine, nothing_taken
):
    fake_engine.behaviour["engine-a.test"] = "http400"
    error = assert_error(
        await post_chat(world, {"model": TEXT_MODEL, "messages": HELLO}),
        400,
        "invalid_request_error",
    )
    assert error["message"] == "the request exceeds the context size"
