"""A burst of requests larger than the Redis connection pool (found by bench many-streams).

redis-py's asyncio pool refuses connections past its size instead of waiting; 1000 streams
opened at once got HTTP 500 for all but 100, and releases failing the same way leaked slots.
"""

import asyncio

import pytest

from inference_app.gateway.concurrency import RedisLimiter

BURST = 400  # well past redis-py's default pool of 100 connections


@pytest.mark.scaled
async def test_a_burst_of_acquires_and_releases_all_succeed(redis_url, redis_key_prefix):
    limiter = RedisLimiter(redis_url, redis_key_prefix, lease_seconds=60)
    granted = await asyncio.gather(
        *(
            limiter.acquire(
                user_id=1, user_limit=BURST, project_id=2, project_limit=BURST, request_id=f"r{i}"
            )
            for i in range(BURST)
        )
    )
    assert all(granted)
    assert await limiter.in_flight(user_id=1) == BURST
    await asyncio.gather(
        *(limiter.release(user_id=1, project_id=2, request_id=f"r{i}") for i in range(BURST))
    )
    assert await limiter.in_flight(user_id=1) == 0
    assert await limiter.in_flight(project_id=2) == 0
