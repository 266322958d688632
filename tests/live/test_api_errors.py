"""Every documented error, through the official openai client against a live daphne.

Each error must map to the client's exception class, carry OpenAI's error body, and leave no
usage row behind (a rejected request charges nothing). The engine behind the models is bench's
fake engine; the model whose deployment is down points at a closed port.
"""

import base64
import time

import httpx
import openai
import pytest

from tests.support.clients import (
    RequestCounter,
    api_headers,
    create_once_a_slot_is_free,
    openai_client,
)
from tests.support.engines import fake_engine_stats
from tests.support.world import (
    BROKE_PROJECT,
    DOWN_MODEL,
    FAST_MODEL,
    MAIN_PROJECT,
    RIVAL_PROJECT,
    SLOW_MODEL,
    SOLO_PROJECT,
    UNDEPLOYED_MODEL,
    VISION_MODEL,
)

HELLO = [{"role": "user", "content": "Say hello."}]
# A 1x1 transparent PNG, as a data URL.
PIXEL = (
    "data:image/png;base64,"
    + base64.b64encode(
        bytes.fromhex(
            "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
            "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
        )
    ).decode()
)


@pytest.fixture
def stack(sqlite_stack):
    return sqlite_stack


@pytest.fixture
def alice(stack):
    return openai_client(stack.url, stack.api_keys["alice"], MAIN_PROJECT, max_retries=0)


def assert_error_body(exc: openai.APIStatusError, *, status: int, code: str | None) -> dict:
    """OpenAI's error body, always: {"error": {"message", "type", "param", "code"}}."""
    assert exc.status_code == status
    body = exc.response.json()
    assert list(body) == ["error"], body
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["type"], str) and error["type"]
    if code is not None:
        assert error["code"] == code, error
    return error


def assert_no_new_usage(stack, before: list[dict]) -> None:
    # Settlement may run just after the response; give a late (wrong) row a moment to appear.
    time.sleep(0.2)
    assert stack.usage_rows() == before


# --- 401 -----------------------------------------------------------------------------------
def test_unknown_key_is_authentication_error(stack):
    before = stack.usage_rows()
    client = openai_client(stack.url, "ys-not-a-real-key-at-all", MAIN_PROJECT, max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        client.chat.completions.create(model=FAST_MODEL, messages=HELLO)
    error = assert_error_body(caught.value, status=401, code="invalid_api_key")
    assert error["message"] == "Invalid Authentication"
    assert_no_new_usage(stack, before)


def test_missing_authorization_header_is_401(stack):
    before = stack.usage_rows()
    response = httpx.post(
        f"{stack.url}/v1/chat/completions",
        json={"model": FAST_MODEL, "messages": HELLO},
        headers={"OpenAI-Project": MAIN_PROJECT},
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    assert_no_new_usage(stack, before)


def test_revoked_key_is_authentication_error(stack):
    before = stack.usage_rows()
    client = openai_client(stack.url, stack.api_keys["alice-revoked"], MAIN_PROJECT, max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        client.chat.completions.create(model=FAST_MODEL, messages=HELLO)
    assert_error_body(caught.value, status=401, code="invalid_api_key")
    assert_no_new_usage(stack, before)


@pytest.mark.parametrize(
    "project",
    [RIVAL_PROJECT, "acme/no-such-project", "no-such-team/main", "not-a-team-slash-project"],
    ids=["another-teams-project", "unknown-project", "unknown-team", "malformed"],
)
def test_project_the_user_cannot_use_is_authentication_error(stack, project):
    before = stack.usage_rows()
    client = openai_client(stack.url, stack.api_keys["alice"], project, max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        client.chat.completions.create(model=FAST_MODEL, messages=HELLO)
    error = assert_error_body(caught.value, status=401, code="invalid_api_key")
    assert error["message"] == "Invalid Authentication"
    assert_no_new_usage(stack, before)


def test_without_project_header_the_default_project_is_used(stack):
    before = stack.usage_rows()
    client = openai_client(stack.url, stack.api_keys["alice"], None, max_retries=0)
    completion = client.chat.completions.create(model=FAST_MODEL, messages=HELLO, max_tokens=8)
    assert completion.choices[0].message.content
    [row] = stack.usage_rows_since(before, expect=1)
    assert (row["team"], row["project"]) == ("acme", "main")
    assert row["status"] == "ok" and row["source"] == "api"
    assert stack.api_keys["alice"].startswith(row["api_key_prefix"]) and row["api_key_prefix"]


# --- 403 -----------------------------------------------------------------------------------
def test_blocked_country_is_permission_denied(stack):
    before = stack.usage_rows()
    client = openai_client(
        stack.url,
        stack.api_keys["alice"],
        MAIN_PROJECT,
        max_retries=0,
        default_headers={"CF-IPCountry": "XX"},
    )
    with pytest.raises(openai.PermissionDeniedError) as caught:
        client.chat.completions.create(model=FAST_MODEL, messages=HELLO)
    error = assert_error_body(caught.value, status=403, code="unsupported_country_region_territory")
    assert error["message"] == "Country, region, or territory not supported"
    assert_no_new_usage(stack, before)


def test_other_countries_are_served(alice):
    completion = alice.chat.completions.create(
        model=FAST_MODEL, messages=HELLO, max_tokens=4, extra_headers={"CF-IPCountry": "FR"}
    )
    assert completion.choices[0].message.content


# --- 429 -----------------------------------------------------------------------------------
def test_concurrency_limit_is_rate_limit_error_with_retry_after(stack):
    """acme/solo allows one request at a time: a second one, while a stream is open, gets 429."""
    before = stack.usage_rows()
    client = openai_client(stack.url, stack.api_keys["alice"], SOLO_PROJECT, max_retries=0)
    held = client.chat.completions.create(
        model=SLOW_MODEL, messages=HELLO, max_tokens=200, stream=True
    )
    try:
        next(iter(held))  # the stream is open: the slot is taken
        with pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(model=FAST_MODEL, messages=HELLO, max_tokens=4)
        error = assert_error_body(caught.value, status=429, code="concurrency_limit_reached")
        assert error["message"] == "Concurrency limit reached for requests"
        retry_after = caught.value.response.headers.get("retry-after")
        assert retry_after is not None and float(retry_after) > 0
    finally:
        held.close()
    # The slot comes back once the held stream is gone.
    completion = create_once_a_slot_is_free(client, model=FAST_MODEL, messages=HELLO, max_tokens=4)
    assert completion.choices[0].message.content
    rows = stack.usage_rows_since(before, expect=2)
    # The held stream and the final request; the rejected request left nothing.
    assert sorted(row["status"] for row in rows) == ["cancelled", "ok"], rows
    assert all(row["error_code"] != "concurrency_limit_reached" for row in rows)


def test_no_credits_is_quota_error_and_the_client_does_not_retry(stack, fake_engine):
    """broke's credits are spent (Free plan): 429 insufficient_quota with x-should-retry: false.

    The client keeps its default retries (2 for a 429): the header must stop them.
    """
    before = stack.usage_rows()
    engine_before = fake_engine_stats(fake_engine)["total_requests"]
    counter = RequestCounter()
    client = openai_client(stack.url, stack.api_keys["carol"], BROKE_PROJECT, counter=counter)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model=FAST_MODEL, messages=HELLO, max_tokens=4)
    error = assert_error_body(caught.value, status=429, code="insufficient_quota")
    assert error["message"] == (
        "You exceeded your current quota, please check your plan and billing details"
    )
    assert caught.value.response.headers.get("x-should-retry") == "false"
    assert counter.count == 1
    assert fake_engine_stats(fake_engine)["total_requests"] == engine_before
    assert_no_new_usage(stack, before)


# --- 404 -----------------------------------------------------------------------------------
@pytest.mark.parametrize("model", ["no-such-org/no-such-model", UNDEPLOYED_MODEL])
def test_unknown_or_undeployed_model_is_not_found(stack, alice, model):
    before = stack.usage_rows()
    with pytest.raises(openai.NotFoundError) as caught:
        alice.chat.completions.create(model=model, messages=HELLO)
    assert_error_body(caught.value, status=404, code="model_not_found")
    assert_no_new_usage(stack, before)


# --- 400 -----------------------------------------------------------------------------------
BAD_REQUESTS = {
    "messages-not-a-list": ({"messages": "hello"}, "messages"),
    "empty-messages": ({"messages": []}, "messages"),
    "message-without-role": ({"messages": [{"content": "hi"}]}, "messages"),
    "temperature-not-a-number": ({"messages": HELLO, "temperature": "hot"}, "temperature"),
    "max-tokens-not-an-int": ({"messages": HELLO, "max_tokens": "ten"}, "max_tokens"),
    "max-tokens-beyond-context": ({"messages": HELLO, "max_tokens": 10_000_000}, "max_tokens"),
    "image-for-a-text-model": (
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        {"type": "image_url", "image_url": {"url": PIXEL}},
                    ],
                }
            ]
        },
        "messages",
    ),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_invalid_request_is_bad_request_error(stack, alice, case):
    fields, param = BAD_REQUESTS[case]
    before = stack.usage_rows()
    with pytest.raises(openai.BadRequestError) as caught:
        # The client sends whatever it is given: the server is the one that must refuse.
        alice.chat.completions.create(model=FAST_MODEL, **fields)
    error = assert_error_body(caught.value, status=400, code=None)
    assert error["type"] == "invalid_request_error"
    assert (error["param"] or "").startswith(param), error
    assert_no_new_usage(stack, before)


def test_image_for_a_vision_model_is_accepted(alice):
    completion = alice.chat.completions.create(
        model=VISION_MODEL,
        max_tokens=4,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": PIXEL}},
                ],
            }
        ],
    )
    assert completion.choices[0].message.content


@pytest.mark.parametrize(
    "content", [b"{not json", b"", b"[1, 2, 3]", b'{"model": 5, "messages": []}'], ids=repr
)
def test_malformed_json_is_400(stack, content):
    before = stack.usage_rows()
    response = httpx.post(
        f"{stack.url}/v1/chat/completions",
        content=content,
        headers=api_headers(stack.api_keys["alice"], MAIN_PROJECT),
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert_no_new_usage(stack, before)


def test_missing_model_is_400(stack):
    before = stack.usage_rows()
    response = httpx.post(
        f"{stack.url}/v1/chat/completions",
        json={"messages": HELLO},
        headers=api_headers(stack.api_keys["alice"], MAIN_PROJECT),
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "model"
    assert_no_new_usage(stack, before)


def test_huge_body_is_413(stack):
    """The stack refuses bodies over 1 MB (MAX_REQUEST_BYTES); this one is 2 MB of valid JSON."""
    before = stack.usage_rows()
    huge = [{"role": "user", "content": "x" * 2_000_000}]
    response = httpx.post(
        f"{stack.url}/v1/chat/completions",
        json={"model": FAST_MODEL, "messages": huge},
        headers=api_headers(stack.api_keys["alice"], MAIN_PROJECT),
        timeout=30,
    )
    assert response.status_code == 413, response.text[:500]
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert_no_new_usage(stack, before)


# --- 5xx -----------------------------------------------------------------------------------
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_engine_down_is_server_error(stack, alice, stream):
    """DOWN_MODEL's only deployment points at a closed port: 503 model_unavailable."""
    before = stack.usage_rows()
    with pytest.raises(openai.InternalServerError) as caught:
        result = alice.chat.completions.create(model=DOWN_MODEL, messages=HELLO, stream=stream)
        if stream:
            list(result)
    assert_error_body(caught.value, status=503, code="model_unavailable")
    assert_no_new_usage(stack, before)
    # The other models are unaffected.
    assert alice.chat.completions.create(model=FAST_MODEL, messages=HELLO, max_tokens=4).choices


# --- what rejections leave behind ---------------------------------------------------------
def test_rejected_requests_take_no_slot(stack):
    """acme/solo allows ONE request: after a volley of rejected ones, a request still gets in."""
    client = openai_client(stack.url, stack.api_keys["alice"], SOLO_PROJECT, max_retries=0)
    attempts = [
        dict(model="no-such/model", messages=HELLO),
        dict(model=FAST_MODEL, messages=[]),
        dict(model=FAST_MODEL, messages=HELLO, max_tokens=10_000_000),
        dict(model=DOWN_MODEL, messages=HELLO),
        dict(model=DOWN_MODEL, messages=HELLO, stream=True),
    ]
    for kwargs in attempts:
        with pytest.raises(openai.APIStatusError):
            result = client.chat.completions.create(**kwargs)
            if kwargs.get("stream"):
                list(result)
    completion = client.chat.completions.create(model=FAST_MODEL, messages=HELLO, max_tokens=4)
    assert completion.choices[0].message.content
