"""Concurrency limits across TWO daphne processes sharing PostgreSQL and Redis.

A project allows L requests at a time. 5×L streaming requests, split over both processes, start
together against a fake engine that streams slowly: exactly L get in, the engine never sees more
than L at once, the rest get 429 concurrency_limit_reached. The admitted ones then finish, hang
up or are cancelled, and afterwards every slot is free again (a new batch of L gets in, and no
counter is left in Redis).
"""

import asyncio
import itertools

import openai
import pytest
import redis

from tests.support.clients import async_openai_client
from tests.support.engines import fake_engine_reset, fake_engine_stats, start_fake_engine
from tests.support.stack import Stack
from tests.support.world import FAKE_ENGINE_OVERRIDES, FAST_MODEL, SLOW_MODEL, SLOW_UPSTREAM

pytestmark = pytest.mark.scaled

LIMIT = 3
STREAM_TOKENS = 100  # 5 s at the fake engine's 20 tokens/s: every request arrives while they run
HELLO = [{"role": "user", "content": "Count slowly."}]
# Each request below reserves a few micro-dollars (16 tokens of Llama 3.1 8B): this pays for a
# handful, far fewer than the burst sends.
THRIFTY_BALANCE = 40


@pytest.fixture(scope="module")
def fake_engine(tmp_path_factory):
    engine = start_fake_engine(
        var_dir=tmp_path_factory.mktemp("scaled-fake-engine"), model_overrides=FAKE_ENGINE_OVERRIDES
    )
    yield engine
    engine.stop()


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory,
    module_postgres_database,
    module_redis_url,
    module_redis_key_prefix,
    fake_engine,
):
    var_dir = tmp_path_factory.mktemp("scaled-stack")
    stack = Stack(
        database_url=module_postgres_database,
        var_dir=var_dir,
        redis_url=module_redis_url,
        redis_key_prefix=module_redis_key_prefix,
    )
    try:
        stack.migrate()
        stack.seed(
            {
                "organizations": [
                    {"slug": "scale", "plan": "pro"},
                    # Free plan (no overage), a few requests' worth of credit left.
                    {"slug": "thrifty", "plan": "free", "balance_micros": THRIFTY_BALANCE},
                ],
                "users": [
                    # sam's own limit is high: the project's limit is the one under test.
                    {"username": "sam", "organization": "scale", "concurrency_limit": 100},
                    # uma's own limit is the binding one.
                    {"username": "uma", "organization": "scale", "concurrency_limit": 2},
                    {"username": "quinn", "organization": "thrifty", "concurrency_limit": 100},
                ],
                "teams": [
                    {"name": "scale", "organization": "scale", "members": ["sam", "uma"]},
                    {"name": "thrifty", "organization": "thrifty", "members": ["quinn"]},
                ],
                "projects": [
                    {"team": "scale", "name": "limited", "concurrency_limit": LIMIT},
                    {"team": "scale", "name": "wide", "concurrency_limit": 100},
                    {"team": "thrifty", "name": "lab", "concurrency_limit": 100},
                ],
                "deployments": [
                    {
                        "name": "fake-slow",
                        "model": SLOW_MODEL,
                        "base_url": fake_engine.base_url,
                        "upstream_model": SLOW_UPSTREAM,
                    },
                    {"name": "fake-fast", "model": FAST_MODEL, "base_url": fake_engine.base_url},
                ],
                "api_keys": [
                    {"label": "sam", "user": "sam"},
                    {"label": "uma", "user": "uma"},
                    {"label": "quinn", "user": "quinn"},
                ],
            }
        )
        stack.start_servers(2)
        yield stack
    finally:
        stack.stop()


def clients_for(stack, key: str, project: str) -> list[openai.AsyncOpenAI]:
    """One client per server process; request i goes to process i % 2."""
    return [async_openai_client(url, key, project, max_retries=0) for url in stack.urls]


def held_counters(stack) -> dict[str, int]:
    """Non-empty concurrency state under the stack's Redis prefix (the channel layer's excluded):
    members of sorted sets, and integer counters."""
    client = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    held = {}
    try:
        for key in client.scan_iter(match=f"{stack.redis_key_prefix}*"):
            if key.startswith(f"{stack.redis_key_prefix}:asgi"):
                continue
            kind = client.type(key)
            if kind == "zset":
                held[key] = client.zcard(key)
            elif kind == "string" and (value := client.get(key) or "").lstrip("-").isdigit():
                held[key] = int(value)
    finally:
        client.close()
    return {key: n for key, n in held.items() if n}


async def wait_until(predicate, timeout: float = 5.0):
    """Poll `predicate` until it returns something true or `timeout` passes; its last value."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not (value := predicate()) and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.1)
    return value


class CounterSampler:
    """Samples the Redis counters while a burst runs; keeps the largest value seen."""

    def __init__(self, stack) -> None:
        self.stack = stack
        self.largest = 0

    async def run(self) -> None:
        while True:
            self.largest = max([self.largest, *held_counters(self.stack).values()])
            await asyncio.sleep(0.05)


async def burst(clients, count: int, *, max_tokens: int, behave) -> tuple[list, list]:
    """Start `count` streaming requests at once; once every one of them is answered (admitted
    or refused), `behave(stream, admitted_index)` consumes each admitted stream. Holding the
    admitted streams until then keeps a slot freed early from letting a late request in.
    Returns (admitted results, rejections)."""
    admitted_order = itertools.count()
    start, all_answered = asyncio.Event(), asyncio.Event()
    answered = itertools.count(1)

    def answer() -> None:
        if next(answered) == count:
            all_answered.set()

    async def one(i: int):
        await start.wait()
        try:
            stream = await clients[i % len(clients)].chat.completions.create(
                model=SLOW_MODEL, messages=HELLO, max_tokens=max_tokens, stream=True
            )
        except openai.RateLimitError as error:
            return ("rejected", error)
        finally:
            answer()  # on any outcome, or a failing request would leave the others waiting
        await all_answered.wait()
        return ("admitted", await behave(stream, next(admitted_order)))

    tasks = [asyncio.create_task(one(i)) for i in range(count)]
    start.set()
    results = await asyncio.gather(*tasks)
    return (
        [value for kind, value in results if kind == "admitted"],
        [value for kind, value in results if kind == "rejected"],
    )


async def finish_hang_up_or_cancel(stream, index: int) -> str:
    """The admitted requests end in the three ways a slot must survive."""
    if index % 3 == 0:
        chunks = [chunk async for chunk in stream]
        assert chunks, "a finished stream carried no chunk"
        return "finished"
    if index % 3 == 1:
        seen = 0
        async for _ in stream:
            seen += 1
            if seen == 3:
                break
        await stream.close()  # the client hangs up mid-stream
        return "hung up"

    async def read_all():
        async for _ in stream:
            pass

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(read_all(), timeout=0.5)  # the client's task is cancelled
    await stream.close()
    return "cancelled"


async def read_to_end(stream, index: int) -> int:
    return len([chunk async for chunk in stream])


async def test_project_limit_holds_across_two_processes_and_every_slot_comes_back(
    stack, fake_engine
):
    clients = clients_for(stack, stack.api_keys["sam"], "scale/limited")
    before = stack.usage_rows()
    fake_engine_reset(fake_engine)

    sampler = CounterSampler(stack)
    sampling = asyncio.create_task(sampler.run())
    admitted, rejected = await burst(
        clients, 5 * LIMIT, max_tokens=STREAM_TOKENS, behave=finish_hang_up_or_cancel
    )
    sampling.cancel()
    # The slots were held in Redis (so the "all free" check below is not vacuous).
    assert sampler.largest == LIMIT

    assert len(admitted) == LIMIT, (admitted, rejected)
    assert len(rejected) == 4 * LIMIT
    for error in rejected:
        assert error.status_code == 429 and error.code == "concurrency_limit_reached"
        assert error.response.headers.get("retry-after")
    stats = fake_engine_stats(fake_engine)
    assert stats["max_concurrent"] == LIMIT, stats  # never more than L in flight
    assert stats["total_requests"] == LIMIT, stats  # rejected requests never reached the engine
    # The engine requests of the clients that hung up or were cancelled were stopped too.
    expected = {"finished": 0, "hung up": 0, "cancelled": 0}
    for outcome in admitted:
        expected[outcome] += 1
    assert await wait_until(
        lambda: (
            fake_engine_stats(fake_engine)["cancelled_streams"]
            == expected["hung up"] + expected["cancelled"]
        )
    ), fake_engine_stats(fake_engine)
    assert fake_engine_stats(fake_engine)["completed"] == expected["finished"]

    # Every slot is free again, in Redis and in fact.
    assert await wait_until(lambda: not held_counters(stack)), held_counters(stack)
    rows = stack.usage_rows_since(before, expect=LIMIT)
    assert len(rows) == LIMIT, rows  # one row per admitted request, none for the rejected
    assert sorted(row["status"] for row in rows) == ["cancelled", "cancelled", "ok"], rows

    fake_engine_reset(fake_engine)
    admitted, rejected = await burst(clients, LIMIT, max_tokens=10, behave=read_to_end)
    assert len(admitted) == LIMIT and not rejected, rejected
    assert fake_engine_stats(fake_engine)["max_concurrent"] == LIMIT
    assert await wait_until(lambda: not held_counters(stack)), held_counters(stack)
    for client in clients:
        await client.close()


async def test_user_limit_holds_across_two_processes(stack, fake_engine):
    """uma may run 2 requests at a time, whatever the project allows."""
    clients = clients_for(stack, stack.api_keys["uma"], "scale/wide")
    fake_engine_reset(fake_engine)
    admitted, rejected = await burst(clients, 6, max_tokens=STREAM_TOKENS, behave=read_to_end)
    assert len(admitted) == 2 and len(rejected) == 4, (admitted, rejected)
    assert all(error.code == "concurrency_limit_reached" for error in rejected)
    assert fake_engine_stats(fake_engine)["max_concurrent"] == 2
    assert await wait_until(lambda: not held_counters(stack)), held_counters(stack)
    for client in clients:
        await client.close()


async def test_parallel_requests_never_spend_more_than_the_credits(stack):
    """Lesson 1 of DESIGN.md: 20 requests at once, over two processes, against a balance that
    pays for a few. Whatever the interleaving, the organization never goes below zero."""
    clients = clients_for(stack, stack.api_keys["quinn"], "thrifty/lab")
    before = stack.usage_rows()

    async def one(i: int):
        try:
            return await clients[i % 2].chat.completions.create(
                model=FAST_MODEL, messages=HELLO, max_tokens=16
            )
        except openai.RateLimitError as error:
            return error

    results = await asyncio.gather(*(one(i) for i in range(20)))
    served = [r for r in results if not isinstance(r, openai.RateLimitError)]
    refused = [r for r in results if isinstance(r, openai.RateLimitError)]
    assert served and refused, results
    assert all(error.code == "insufficient_quota" for error in refused)
    # Settlement may end just after the response; each row is written with its charge.
    rows = stack.usage_rows_since(before, expect=len(served))
    assert len(rows) == len(served)
    [org] = stack.query(
        "SELECT balance_micros, reserved_micros FROM billing_organization WHERE slug = %s",
        ("thrifty",),
    )
    assert org["reserved_micros"] == 0  # every hold was settled or released
    assert org["balance_micros"] >= 0, org
    assert org["balance_micros"] == THRIFTY_BALANCE - sum(row["cost_micros"] for row in rows)
    for client in clients:
        await client.close()
