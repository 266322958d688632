"""The concurrency limiters themselves: in-process, and Redis shared by several processes."""

import asyncio
import uuid

import pytest

from inference_app.gateway import errors
from inference_app.gateway.concurrency import (
    InProcessLimiter,
    RedisLimiter,
    acquire_slots,
    get_limiter,
    reset_limiter,
)


async def exercise(limiter, *, user_limit=2, project_limit=3):
    """Both limits, atomic pairs, release and re-acquire."""
    ids = [uuid.uuid4().hex for _ in range(6)]
    grab = dict(user_limit=user_limit, project_limit=project_limit)
    # User 1 fills its own two slots in project 10.
    assert await limiter.acquire(user_id=1, project_id=10, request_id=ids[0], **grab)
    assert await limiter.acquire(user_id=1, project_id=10, request_id=ids[1], **grab)
    assert not await limiter.acquire(user_id=1, project_id=10, request_id=ids[2], **grab)
    # User 2 takes the project's last slot; then the project is full for user 3.
    assert await limiter.acquire(user_id=2, project_id=10, request_id=ids[3], **grab)
    assert not await limiter.acquire(user_id=3, project_id=10, request_id=ids[4], **grab)
    # A refusal takes nothing: user 3 holds no slot, the project still 3.
    assert await limiter.in_flight(user_id=3) == 0
    assert await limiter.in_flight(project_id=10) == 3
    await limiter.release(user_id=1, project_id=10, request_id=ids[0])
    await limiter.release(user_id=1, project_id=10, request_id=ids[0])  # twice: harmless
    assert await limiter.in_flight(user_id=1) == 1
    assert await limiter.acquire(user_id=3, project_id=10, request_id=ids[5], **grab)
    for user_id, request_id in ((1, ids[1]), (2, ids[3]), (3, ids[5])):
        await limiter.release(user_id=user_id, project_id=10, request_id=request_id)
    assert await limiter.in_flight(project_id=10) == 0


async def test_in_process_limiter():
    await exercise(InProcessLimiter(lease_seconds=60))


async def test_in_process_leases_expire_and_renewal_keeps_them():
    limiter = InProcessLimiter(lease_seconds=0.3)
    grab = dict(user_limit=5, project_id=3, project_limit=5)
    assert await limiter.acquire(user_id=1, request_id="leaked", **grab)
    assert await limiter.acquire(user_id=2, request_id="alive", **grab)
    await asyncio.sleep(0.2)
    await limiter.renew(user_id=2, project_id=3, request_id="alive")
    await asyncio.sleep(0.2)
    assert await limiter.in_flight(user_id=1) == 0
    assert await limiter.in_flight(project_id=3) == 1


async def test_acquire_slots_raises_429_with_retry_after(settings):
    settings.REDIS_URL = ""
    reset_limiter()
    lease = await acquire_slots(
        user_id=1, user_limit=1, project_id=1, project_limit=5, request_id="a"
    )
    with pytest.raises(errors.GatewayError) as caught:
        await acquire_slots(user_id=1, user_limit=1, project_id=1, project_limit=5, request_id="b")
    assert caught.value.status == 429 and "Retry-After" in caught.value.headers
    await lease.release()
    await lease.release()
    assert await get_limiter().in_flight(user_id=1) == 0
    reset_limiter()


@pytest.mark.scaled
async def test_redis_limiter(redis_url, redis_key_prefix):
    await exercise(RedisLimiter(redis_url, redis_key_prefix, lease_seconds=60))


@pytest.mark.scaled
async def test_redis_limiter_is_shared_and_atomic_under_contention(redis_url, redis_key_prefix):
    """Two limiters (as in two processes) racing for 3 project slots: exactly 3 win."""
    first = RedisLimiter(redis_url, redis_key_prefix, lease_seconds=60)
    second = RedisLimiter(redis_url, redis_key_prefix, lease_seconds=60)
    results = await asyncio.gather(
        *(
            (first if i % 2 else second).acquire(
                user_id=i, user_limit=5, project_id=7, project_limit=3, request_id=f"r{i}"
            )
            for i in range(20)
        )
    )
    assert sum(results) == 3
    assert await first.in_flight(project_id=7) == 3
    # The refused ones hold no user slot either.
    for i, granted in enumerate(results):
        assert await second.in_flight(user_id=i) == (1 if granted else 0)
        if granted:
            await second.release(user_id=i, project_id=7, request_id=f"r{i}")
    assert await first.in_flight(project_id=7) == 0


@pytest.mark.scaled
async def test_redis_leases_expire_and_renewal_keeps_them(redis_url, redis_key_prefix):
    limiter = RedisLimiter(redis_url, redis_key_prefix, lease_seconds=1)
    grab = dict(user_limit=5, project_id=3, project_limit=5)
    assert await limiter.acquire(user_id=1, request_id="crashed", **grab)
    assert await limiter.acquire(user_id=2, request_id="alive", **grab)
    await asyncio.sleep(0.6)
    await limiter.renew(user_id=2, project_id=3, request_id="alive")
    await asyncio.sleep(0.6)
    # The crashed process's slot is gone with its lease; the renewed one is still held.
    assert await limiter.in_flight(user_id=1) == 0
    assert await limiter.in_flight(user_id=2) == 1
    assert await limiter.in_flight(project_id=3) == 1
    await limiter.release(user_id=2, project_id=3, request_id="alive")
