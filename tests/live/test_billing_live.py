"""Billing over HTTP against live daphne processes.

Lesson 1: an organization with credits for exactly K requests receives 10 x K parallel requests
through two daphne processes sharing PostgreSQL and Redis. At most K succeed, the rest get the
quota 429, the balance never goes below zero, the ledger sums to the balance.

Lessons 4 and 5: a non-streamed, a streamed and a dropped stream each leave one usage row and
one ledger charge equal to their tokens x the prices that applied.
"""

import asyncio
import json

import httpx
import pytest

from inference_app.gateway.tokens import estimate_prompt_tokens
from tests.support.clients import api_headers, stream_then_hang_up
from tests.support.processes import PYTHON, run_checked
from tests.support.stack import Stack
from tests.support.world import FAST_MODEL, MAIN_PROJECT, SLOW_MODEL

K = 5
MESSAGES = [{"role": "user", "content": "Hi"}]
MAX_TOKENS = 16


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@pytest.fixture
def race_stack(tmp_path, fake_engine, fresh_postgres_database, redis_url, redis_key_prefix):
    stack = Stack(
        database_url=fresh_postgres_database,
        var_dir=tmp_path,
        redis_url=redis_url,
        redis_key_prefix=redis_key_prefix,
    )
    try:
        stack.migrate()
        stack.seed(
            {
                "organizations": [{"slug": "race", "plan": "free"}],
                "users": [
                    {
                        "username": "racer",
                        "organization": "race",
                        "role": "admin",
                        "concurrency_limit": 1000,
                    }
                ],
                "teams": [{"name": "race", "organization": "race", "members": ["racer"]}],
                "projects": [
                    {
                        "team": "race",
                        "name": "burst",
                        "concurrency_limit": 1000,
                        "default_for": ["racer"],
                    }
                ],
                "deployments": [
                    {"name": "fake-fast", "model": FAST_MODEL, "base_url": fake_engine.base_url}
                ],
                "api_keys": [{"label": "racer", "user": "racer"}],
            }
        )
        stack.start_servers(2)
        yield stack
    finally:
        stack.stop()


async def burst(urls: list[str], key: str, count: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=60) as client:
        body = {"model": FAST_MODEL, "messages": MESSAGES, "max_tokens": MAX_TOKENS}
        return await asyncio.gather(
            *(
                client.post(
                    f"{urls[i % len(urls)]}/v1/chat/completions",
                    headers=api_headers(key),
                    json=body,
                )
                for i in range(count)
            )
        )


@pytest.mark.scaled
def test_ten_times_k_parallel_requests_through_two_servers(race_stack):
    stack = race_stack
    price = stack.query(
        "SELECT input_price_micros, output_price_micros FROM inference_app_catalogmodel WHERE model_id = %s",
        (FAST_MODEL,),
    )[0]
    # The gateway's worst case for this request: estimated prompt + max_tokens, at the prices.
    worst_case = ceil_div(
        estimate_prompt_tokens({"messages": MESSAGES}, image_tokens=0) * price["input_price_micros"]
        + MAX_TOKENS * price["output_price_micros"],
        1_000_000,
    )
    run_checked(
        [PYTHON, "-m", "tests.billing.reserve_worker", "adjust", "race", str(K * worst_case)],
        env=stack.env,
    )
    org_id = stack.query("SELECT id FROM billing_organization WHERE slug = 'race'")[0]["id"]

    responses = asyncio.run(burst(stack.urls, stack.api_keys["racer"], 10 * K))

    ok = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 429]
    assert len(ok) + len(refused) == 10 * K, [
        r.text for r in responses if r.status_code not in (200, 429)
    ]
    assert all(r.json()["error"]["code"] == "insufficient_quota" for r in refused)
    assert all(r.headers.get("x-should-retry") == "false" for r in refused)
    rows = stack.usage_rows_since([], expect=len(ok))
    assert len(rows) == len(ok)
    charged = {row["cost_micros"] for row in rows}
    # With these costs, K requests' worth of credits can never pay for a (K+1)th request.
    assert all(K * (worst_case - cost) < worst_case for cost in charged), (worst_case, charged)
    assert 1 <= len(ok) <= K

    org = stack.query(
        "SELECT balance_micros, reserved_micros FROM billing_organization WHERE id = %s", (org_id,)
    )[0]
    ledger = stack.query(
        "SELECT SUM(amount_micros) AS total, MIN(balance_after_micros) AS lowest,"
        " COUNT(*) FILTER (WHERE kind = 'charge') AS charges"
        " FROM billing_ledgerentry WHERE organization_id = %s",
        (org_id,),
    )[0]
    assert org["reserved_micros"] == 0
    assert org["balance_micros"] >= 0 and ledger["lowest"] >= 0
    assert ledger["total"] == org["balance_micros"]
    assert ledger["charges"] == len(ok)
    assert org["balance_micros"] == K * worst_case - sum(row["cost_micros"] for row in rows)
    json.dumps([r.json() for r in ok])  # every success is a complete JSON completion


def test_each_kind_of_request_leaves_one_charge_at_the_price_that_applied(sqlite_stack):
    stack = sqlite_stack
    key = stack.api_keys["alice"]
    before = stack.usage_rows()
    body = {
        "model": FAST_MODEL,
        "messages": [{"role": "user", "content": "Count to ten."}],
        "max_tokens": 12,
    }
    plain = httpx.post(
        f"{stack.url}/v1/chat/completions",
        json=body,
        headers=api_headers(key, MAIN_PROJECT),
        timeout=60,
    )
    assert plain.status_code == 200, plain.text
    with httpx.stream(
        "POST",
        f"{stack.url}/v1/chat/completions",
        json={**body, "stream": True, "stream_options": {"include_usage": True}},
        headers=api_headers(key, MAIN_PROJECT),
        timeout=60,
    ) as streamed:
        assert streamed.status_code == 200
        lines = [line for line in streamed.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    slow = {
        "model": SLOW_MODEL,
        "messages": [{"role": "user", "content": "A long story."}],
        "max_tokens": 200,
    }
    assert stream_then_hang_up(stack.url, key, MAIN_PROJECT, slow, chunks=3) == 3

    rows = stack.usage_rows_since(before, expect=3, timeout=10)
    by_id = {row["request_id"]: row for row in rows}
    assert plain.headers["x-request-id"] in by_id
    assert streamed.headers["x-request-id"] in by_id
    assert sorted(row["status"] for row in rows) == ["cancelled", "ok", "ok"]
    prices = {
        row["model_id"]: (row["input_price_micros"], row["output_price_micros"])
        for row in stack.query(
            "SELECT model_id, input_price_micros, output_price_micros FROM inference_app_catalogmodel"
        )
    }
    for row in rows:
        assert row["completion_tokens"] > 0 and row["prompt_tokens"] > 0
        assert (row["input_price_micros"], row["output_price_micros"]) == prices[row["model"]]
        expected = ceil_div(
            row["prompt_tokens"] * row["input_price_micros"]
            + row["completion_tokens"] * row["output_price_micros"],
            1_000_000,
        )
        assert row["cost_micros"] == expected
        charges = stack.query(
            "SELECT amount_micros FROM billing_ledgerentry WHERE kind = 'charge' AND request_id = %s",
            (row["request_id"],),
        )
        assert charges == [{"amount_micros": -expected}], row
    org = stack.query(
        "SELECT id, balance_micros, reserved_micros FROM billing_organization WHERE slug = 'acme'"
    )[0]
    ledger = stack.query(
        "SELECT SUM(amount_micros) AS total FROM billing_ledgerentry WHERE organization_id = %s",
        (org["id"],),
    )[0]
    assert ledger["total"] == org["balance_micros"]
