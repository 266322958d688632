"""A gateway process that crashes mid-request cannot hold its concurrency slots forever.

Slots live in Redis with a lease (DESIGN.md lesson 2); a running stream renews its lease, a
dead process cannot, so its slots come back when the lease runs out. The stack runs with a
3-second lease to keep the test short.
"""

import time

import openai
import pytest

from tests.support.clients import openai_client
from tests.support.engines import start_fake_engine
from tests.support.stack import Stack
from tests.support.world import (
    FAKE_ENGINE_OVERRIDES,
    FAST_MODEL,
    SLOW_MODEL,
    fake_deployments,
)

pytestmark = pytest.mark.scaled

LEASE_SECONDS = 3
HELLO = [{"role": "user", "content": "Keep talking."}]


@pytest.fixture(scope="module")
def stack(tmp_path_factory, module_postgres_database, module_redis_url, module_redis_key_prefix):
    var_dir = tmp_path_factory.mktemp("crash-stack")
    engine = start_fake_engine(var_dir=var_dir, model_overrides=FAKE_ENGINE_OVERRIDES)
    stack = Stack(
        database_url=module_postgres_database,
        var_dir=var_dir,
        redis_url=module_redis_url,
        redis_key_prefix=module_redis_key_prefix,
        env={"CONCURRENCY_LEASE_SECONDS": str(LEASE_SECONDS)},
    )
    try:
        stack.migrate()
        stack.seed(
            {
                "organizations": [{"slug": "crash", "plan": "pro"}],
                "users": [{"username": "cal", "organization": "crash"}],
                "teams": [{"name": "crash", "organization": "crash", "members": ["cal"]}],
                "projects": [{"team": "crash", "name": "one", "concurrency_limit": 1}],
                "deployments": fake_deployments(engine.base_url),
                "api_keys": [{"label": "cal", "user": "cal"}],
            }
        )
        stack.start_servers(2)
        yield stack
    finally:
        stack.stop()
        engine.stop()


def test_a_long_stream_keeps_its_slot_past_the_lease(stack):
    """Renewal: a stream longer than the lease still holds the project's only slot."""
    first, second = (
        openai_client(url, stack.api_keys["cal"], "crash/one", max_retries=0) for url in stack.urls
    )
    stream = first.chat.completions.create(
        model=SLOW_MODEL, messages=HELLO, max_tokens=200, stream=True
    )
    chunks = iter(stream)
    started = time.monotonic()
    while time.monotonic() - started < 2 * LEASE_SECONDS:
        next(chunks)  # keep reading: the stream is alive
    with pytest.raises(openai.RateLimitError):
        second.chat.completions.create(model=FAST_MODEL, messages=HELLO, max_tokens=2)
    stream.close()


def test_slots_of_a_crashed_process_come_back_after_the_lease(stack):
    # Last in the module: it leaves the stack with one process.
    doomed_url, survivor_url = stack.urls
    doomed = openai_client(doomed_url, stack.api_keys["cal"], "crash/one", max_retries=0)
    survivor = openai_client(survivor_url, stack.api_keys["cal"], "crash/one", max_retries=0)
    stream = doomed.chat.completions.create(
        model=SLOW_MODEL, messages=HELLO, max_tokens=200, stream=True
    )
    next(iter(stream))  # the slot is taken
    stack.crash_server(doomed_url)
    crashed_at = time.monotonic()
    with pytest.raises(openai.RateLimitError):
        survivor.chat.completions.create(model=FAST_MODEL, messages=HELLO, max_tokens=2)

    deadline = crashed_at + LEASE_SECONDS + 5
    while True:
        try:
            completion = survivor.chat.completions.create(
                model=FAST_MODEL, messages=HELLO, max_tokens=2
            )
            break
        except openai.RateLimitError:
            assert time.monotonic() < deadline, "the crashed process's slot never came back"
            time.sleep(0.2)
    assert completion.choices[0].message.content
    stream.close()
