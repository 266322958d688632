"""Concurrency slots per user and per project (DESIGN.md lesson 2).

A request holds one user slot and one project slot from before the engine call until it ends;
both are taken together or not at all. Two implementations, chosen by settings:
- in-process slots (the single-machine default), and
- Redis (when REDIS_URL is set), shared by every gateway process: a sorted set per user and per
  project whose members are request ids scored by lease expiry.
Slots are released at every exit of a request, and at the exit of the process for the requests
still running then (the server may abandon them without cancelling them). Only a crash leaves
slots behind: leases are short (CONCURRENCY_LEASE_SECONDS) and each process renews those of its
running requests, streaming or not, every third of it, so a dead process's slots free soon.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import time
import weakref
from typing import Protocol

from django.conf import settings

from inference_app.gateway import errors
from inference_app.gateway.db_threads import under_sync_caller

log = logging.getLogger(__name__)


class Limiter(Protocol):
    async def acquire(
        self, *, user_id: int, user_limit: int, project_id: int, project_limit: int, request_id: str
    ) -> bool: ...

    async def release(self, *, user_id: int, project_id: int, request_id: str) -> None: ...

    async def renew(self, *, user_id: int, project_id: int, request_id: str) -> None: ...

    async def in_flight(self, *, user_id: int | None = None, project_id: int | None = None) -> int:
        """Slots held now by a user or a project (tests, health, admin)."""
        ...


class Lease:
    """The slots of one request. `release()` is idempotent."""

    def __init__(self, limiter: Limiter, *, user_id: int, project_id: int, request_id: str):
        self.limiter = limiter
        self.user_id = user_id
        self.project_id = project_id
        self.request_id = request_id
        self.released = False
        self.keeper: _LeaseKeeper | None = None  # renews it while it runs (see _keep)

    async def release(self) -> None:
        if self.released:
            return
        self.released = True
        _forget(self)
        await self.limiter.release(
            user_id=self.user_id, project_id=self.project_id, request_id=self.request_id
        )

    def release_at_exit(self) -> None:
        """release(), without an event loop (the process is exiting)."""
        if self.released:
            return
        self.released = True
        release_sync = getattr(self.limiter, "release_sync", None)
        if release_sync is not None:
            release_sync(
                user_id=self.user_id, project_id=self.project_id, request_id=self.request_id
            )


# Leases of running requests, in every loop of this process (renewed by _LeaseKeeper, released
# at exit).
_live_leases: set[Lease] = set()


class _LeaseKeeper:
    """Renews the leases of one loop's running requests every third of the lease, while any
    are running (a non-streaming request waiting minutes for its answer keeps its slots too)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.leases: set[Lease] = set()
        self.task: asyncio.Task | None = None

    def add(self, lease: Lease) -> None:
        self.leases.add(lease)
        if self.task is None or self.task.done():
            self.task = self.loop.create_task(self._renew())

    def discard(self, lease: Lease) -> None:
        self.leases.discard(lease)
        if not self.leases and self.task is not None:
            self.task.cancel()  # nothing to renew: no task left pending on an idle loop
            self.task = None

    async def _renew(self) -> None:
        while True:  # cancelled by discard() once no lease is left
            await asyncio.sleep(settings.CONCURRENCY_LEASE_SECONDS / 3)
            for lease in list(self.leases):
                try:
                    await lease.limiter.renew(
                        user_id=lease.user_id,
                        project_id=lease.project_id,
                        request_id=lease.request_id,
                    )
                except Exception:
                    log.warning("renewing the slots of %s failed", lease.request_id, exc_info=True)


_keepers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LeaseKeeper] = (
    weakref.WeakKeyDictionary()
)


def _keep(lease: Lease) -> None:
    _live_leases.add(lease)
    if under_sync_caller():
        return  # its loop ends with the call, and the request with it
    loop = asyncio.get_running_loop()
    keeper = _keepers.get(loop)
    if keeper is None:
        keeper = _keepers[loop] = _LeaseKeeper(loop)
    lease.keeper = keeper
    keeper.add(lease)


def _forget(lease: Lease) -> None:
    _live_leases.discard(lease)
    if lease.keeper is not None:
        lease.keeper.discard(lease)


@atexit.register
def _release_at_exit() -> None:
    for lease in list(_live_leases):
        try:
            lease.release_at_exit()
        except Exception:
            log.exception("could not release the slots of %s at exit", lease.request_id)
    _live_leases.clear()


class InProcessLimiter:
    """Slots in this process's memory; correct for one gateway process. Leases expire like
    Redis' do, so a call that is never closed cannot hold a slot forever."""

    def __init__(self, lease_seconds: float) -> None:
        self.lease_seconds = lease_seconds
        # key -> {request id: lease expiry (monotonic)}
        self._users: dict[int, dict[str, float]] = {}
        self._projects: dict[int, dict[str, float]] = {}

    @staticmethod
    def _live(table: dict[int, dict[str, float]], key: int, now: float) -> dict[str, float]:
        held = table.setdefault(key, {})
        for request_id in [r for r, expiry in held.items() if expiry <= now]:
            del held[request_id]
        return held

    async def acquire(self, *, user_id, user_limit, project_id, project_limit, request_id) -> bool:
        # No await between the checks and the adds: atomic on the event loop.
        now = time.monotonic()
        user = self._live(self._users, user_id, now)
        project = self._live(self._projects, project_id, now)
        if len(user) >= user_limit or len(project) >= project_limit:
            return False
        user[request_id] = project[request_id] = now + self.lease_seconds
        return True

    async def release(self, *, user_id, project_id, request_id) -> None:
        for table, key in ((self._users, user_id), (self._projects, project_id)):
            held = table.get(key)
            if held is not None:
                held.pop(request_id, None)
                if not held:
                    del table[key]

    async def renew(self, *, user_id, project_id, request_id) -> None:
        expiry = time.monotonic() + self.lease_seconds
        for table, key in ((self._users, user_id), (self._projects, project_id)):
            held = table.get(key)
            if held is not None and request_id in held:
                held[request_id] = expiry

    async def in_flight(self, *, user_id=None, project_id=None) -> int:
        if user_id is not None:
            return len(self._live(self._users, user_id, time.monotonic()))
        return len(self._live(self._projects, project_id, time.monotonic()))


# KEYS: user zset, project zset. ARGV: user limit, project limit, request id, lease seconds.
# Redis' own clock scores the leases, so processes with skewed clocks agree.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local lease = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + lease, ARGV[3])
redis.call('ZADD', KEYS[2], now + lease, ARGV[3])
redis.call('EXPIRE', KEYS[1], math.ceil(lease) + 60)
redis.call('EXPIRE', KEYS[2], math.ceil(lease) + 60)
return 1
"""

# KEYS: user zset, project zset. ARGV: request id, lease seconds. Only extends held slots.
_RENEW = """
local t = redis.call('TIME')
local expires = tonumber(t[1]) + tonumber(t[2]) / 1000000 + tonumber(ARGV[2])
for i = 1, 2 do
  if redis.call('ZSCORE', KEYS[i], ARGV[1]) then
    redis.call('ZADD', KEYS[i], 'XX', expires, ARGV[1])
    redis.call('EXPIRE', KEYS[i], math.ceil(tonumber(ARGV[2])) + 60)
  end
end
return 1
"""

# KEYS: a zset. Live members only.
_COUNT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZCARD', KEYS[1])
"""


# Connections per process and event loop; more only queue at Redis, which runs one command at
# a time anyway.
REDIS_MAX_CONNECTIONS = 50


class RedisLimiter:
    """Slots shared by every gateway process through Redis (redis.asyncio)."""

    def __init__(self, url: str, prefix: str, lease_seconds: int) -> None:
        self.url = url
        self.prefix = prefix
        self.lease_seconds = lease_seconds
        # redis.asyncio connections belong to one event loop.
        self._clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._sync_client = None  # for release_sync, made when first needed

    def _client(self):
        import redis.asyncio as redis

        loop = asyncio.get_running_loop()
        entry = self._clients.get(loop)
        if entry is None:
            # redis-py's default pool refuses a connection past its size (100) instead of
            # waiting: a burst of 1000 streams got HTTP 500s and failed releases leaked slots.
            # A blocking pool queues the burst; each script call holds a connection briefly.
            pool = redis.BlockingConnectionPool.from_url(
                self.url,
                max_connections=REDIS_MAX_CONNECTIONS,
                timeout=5,
                socket_timeout=5,
                socket_connect_timeout=2,
            )
            client = redis.Redis(connection_pool=pool)
            entry = (
                client,
                client.register_script(_ACQUIRE),
                client.register_script(_RENEW),
                client.register_script(_COUNT),
            )
            self._clients[loop] = entry
        return entry

    def _keys(self, user_id: int, project_id: int) -> list[str]:
        return [
            f"{self.prefix}:conc:user:{user_id}",
            f"{self.prefix}:conc:project:{project_id}",
        ]

    async def acquire(self, *, user_id, user_limit, project_id, project_limit, request_id) -> bool:
        _, acquire, _, _ = self._client()
        granted = await acquire(
            keys=self._keys(user_id, project_id),
            args=[user_limit, project_limit, request_id, self.lease_seconds],
        )
        return bool(granted)

    async def release(self, *, user_id, project_id, request_id) -> None:
        client, _, _, _ = self._client()
        user_key, project_key = self._keys(user_id, project_id)
        async with client.pipeline(transaction=True) as pipe:
            pipe.zrem(user_key, request_id)
            pipe.zrem(project_key, request_id)
            await pipe.execute()

    def release_sync(self, *, user_id, project_id, request_id) -> None:
        """release() from sync code (at exit, when no event loop runs any more)."""
        import redis

        if self._sync_client is None:
            self._sync_client = redis.Redis.from_url(
                self.url, socket_timeout=2, socket_connect_timeout=2
            )
        user_key, project_key = self._keys(user_id, project_id)
        with self._sync_client.pipeline(transaction=True) as pipe:
            pipe.zrem(user_key, request_id)
            pipe.zrem(project_key, request_id)
            pipe.execute()

    async def renew(self, *, user_id, project_id, request_id) -> None:
        _, _, renew, _ = self._client()
        await renew(keys=self._keys(user_id, project_id), args=[request_id, self.lease_seconds])

    async def in_flight(self, *, user_id=None, project_id=None) -> int:
        _, _, _, count = self._client()
        if user_id is not None:
            key = f"{self.prefix}:conc:user:{user_id}"
        else:
            key = f"{self.prefix}:conc:project:{project_id}"
        return int(await count(keys=[key]))


_limiter: Limiter | None = None
_limiter_config: tuple | None = None


def reset_limiter() -> None:
    """Forget the limiter (and, in process, every slot): tests start from a clean slate."""
    global _limiter, _limiter_config
    _limiter = None
    _limiter_config = None


def get_limiter() -> Limiter:
    """The limiter the settings ask for (rebuilt when tests change REDIS_URL / the prefix)."""
    global _limiter, _limiter_config
    config = (settings.REDIS_URL, settings.REDIS_KEY_PREFIX, settings.CONCURRENCY_LEASE_SECONDS)
    if _limiter is None or config != _limiter_config:
        if settings.REDIS_URL:
            _limiter = RedisLimiter(*config)
        else:
            _limiter = InProcessLimiter(settings.CONCURRENCY_LEASE_SECONDS)
        _limiter_config = config
    return _limiter


async def acquire_slots(
    *, user_id: int, user_limit: int, project_id: int, project_limit: int, request_id: str
) -> Lease:
    """Take a user slot and a project slot together, or raise 429 concurrency_limit_reached."""
    limiter = get_limiter()
    # Shielded: a caller cancelled while Redis runs the script must not leave a slot taken.
    attempt = asyncio.ensure_future(
        limiter.acquire(
            user_id=user_id,
            user_limit=user_limit,
            project_id=project_id,
            project_limit=project_limit,
            request_id=request_id,
        )
    )
    try:
        granted = await asyncio.shield(attempt)
    except asyncio.CancelledError:
        attempt.add_done_callback(
            lambda done: _release_if_granted(limiter, done, user_id, project_id, request_id)
        )
        raise
    if not granted:
        raise errors.concurrency_limit_reached()
    lease = Lease(limiter, user_id=user_id, project_id=project_id, request_id=request_id)
    _keep(lease)
    return lease


def _release_if_granted(limiter, attempt, user_id, project_id, request_id) -> None:
    if attempt.cancelled() or attempt.exception() is not None or not attempt.result():
        return
    task = asyncio.ensure_future(
        limiter.release(user_id=user_id, project_id=project_id, request_id=request_id)
    )
    _background.add(task)
    task.add_done_callback(_background.discard)


# Strong references to fire-and-forget clean-ups, so they are not garbage-collected mid-way.
_background: set[asyncio.Future] = set()
