"""Holding each request's worst-case cost before the engine call, in group commits.

Reserve before the call, settle after: check-then-charge lets parallel requests overspend.
Every request gets a reservation of its own (billing.quota.reserve_credits_batch), so a request
is refused exactly when the organization cannot afford its worst case next to the holds of the
requests still running, whichever process runs them. The reservation is also the request's
write-ahead record: it names this process (holder_token()) and what a `lost` settlement needs, so
if the process dies the sweep (billing.lost) settles the request instead of forgetting it.

To keep a transaction per request off the CPU budget under load, the reservations that arrive
while one is being written wait for it and go together in the next transaction: a group
commit. Nobody waits for a timer: alone, a request is a transaction of its own; under load a
few transactions carry many requests, each still decided as if reserved alone, in order.

While this process holds reservations, it beats its holder's heartbeat every
HOLDER_HEARTBEAT_SECONDS, so the sweep can tell a long request from a dead process.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
import weakref

from django.conf import settings

from billing.errors import QuotaExceeded
from billing.lost import reservation_holder_beat, reservation_holder_forget
from billing.quota import HoldRequest, release_reservation, reserve_credits_batch
from inference_app.gateway.db_threads import run_db, run_db_background, under_sync_caller

log = logging.getLogger(__name__)

_token: tuple[int, str] | None = None


def holder_token() -> str:
    """This process, as the holder of its reservations: unique across hosts and restarts, and
    new in a child forked after import (a child is a holder of its own)."""
    global _token
    if _token is None or _token[0] != os.getpid():
        pid = os.getpid()
        _token = (pid, f"{socket.gethostname()[:30]}-{pid}-{uuid.uuid4().hex[:12]}")
    return _token[1]


# A release the database refused (a blip) is tried again this long after, doubling up to the
# ceiling: a hold nothing will charge must not stay held while the process lives.
RELEASE_RETRY_FIRST_SECONDS = 0.5
RELEASE_RETRY_MAX_SECONDS = 30.0
_retrying_releases: set[asyncio.Task] = set()
# At most this many reservations in one transaction (the statement's parameters stay bounded).
MAX_GROUP = 200


class Hold:
    """One admitted request's worst case, held in the database until its usage row is written
    (the settlement releases it in the same transaction)."""

    def __init__(self, *, request_id: str, amount_micros: int) -> None:
        self.request_id = request_id
        self.amount_micros = amount_micros
        self.heartbeat: _Heartbeat | None = None  # beats while this process vouches for it

    async def release_unused(self) -> None:
        """Nothing will be charged (refused, never answered): give the worst case back (now, or
        by retries in the background when the database refuses; this process vouches for the
        hold until it is released)."""
        try:
            await run_db(release_reservation, request_id=self.request_id)
        except Exception:
            if under_sync_caller():
                raise
            log.warning("releasing %s failed; retrying", self.request_id, exc_info=True)
            task = asyncio.get_running_loop().create_task(_release_until_done(self))
            _retrying_releases.add(task)
            task.add_done_callback(_retrying_releases.discard)
            return
        _holding_done(self)

    def settled_by(self, written: asyncio.Future | None) -> None:
        """The usage row is on its way (`written` is done once it is committed, and with it the
        hold released): this process stops vouching for the hold then."""
        if written is None or written.done():
            _holding_done(self)
        else:
            written.add_done_callback(lambda _: _holding_done(self))


async def _release_until_done(hold_: Hold) -> None:
    delay = RELEASE_RETRY_FIRST_SECONDS
    while True:
        await asyncio.sleep(delay)
        try:
            await run_db_background(release_reservation, request_id=hold_.request_id)
        except Exception:
            log.warning("releasing %s failed; retrying", hold_.request_id, exc_info=True)
            delay = min(delay * 2, RELEASE_RETRY_MAX_SECONDS)
            continue
        _holding_done(hold_)
        return


async def hold(request: HoldRequest) -> Hold:
    """Hold `request.amount_micros` for `request.request_id`, or raise QuotaExceeded."""
    if under_sync_caller():
        # Sync code's loop ends with the call (the test Client, a management command).
        held = (await run_db(reserve_credits_batch, [request]))[0]
    else:
        held = await _group().submit(request)
    if not held:
        raise QuotaExceeded(request.organization_id)
    held_request = Hold(request_id=request.request_id, amount_micros=request.amount_micros)
    _holding_started(held_request)
    return held_request


class _GroupCommit:
    """The reservations of one event loop waiting for the next transaction."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.waiting: list[tuple[HoldRequest, asyncio.Future]] = []
        self.writer: asyncio.Task | None = None

    async def submit(self, request: HoldRequest) -> bool:
        decided = self.loop.create_future()
        self.waiting.append((request, decided))
        if self.writer is None or self.writer.done():
            self.writer = self.loop.create_task(self._write())
        return await decided

    async def _write(self) -> None:
        while self.waiting:
            taken, self.waiting = self.waiting[:MAX_GROUP], self.waiting[MAX_GROUP:]
            try:
                results = await run_db(reserve_credits_batch, [request for request, _ in taken])
            except BaseException as exc:
                for _, decided in taken:
                    if not decided.done():
                        decided.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            for (_, decided), held in zip(taken, results, strict=True):
                if not decided.done():
                    decided.set_result(held)


class _Heartbeat:
    """Beats this process's holder heartbeat while it holds reservations, and only then: every
    HOLDER_HEARTBEAT_SECONDS, not once per request (at one request at a time, holds come and go
    with each request)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.holds: set[Hold] = set()
        self.task: asyncio.Task | None = None
        self.last_beat: float | None = None  # loop time

    def started(self, hold_: Hold) -> None:
        self.holds.add(hold_)
        if self.task is None or self.task.done():
            self.task = self.loop.create_task(self._beat())

    def done(self, hold_: Hold) -> None:
        self.holds.discard(hold_)
        if not self.holds and self.task is not None:
            self.task.cancel()  # nothing left to vouch for: no task left pending on an idle loop
            self.task = None

    async def _beat(self) -> None:
        period = settings.HOLDER_HEARTBEAT_SECONDS
        while True:
            if self.last_beat is not None:
                # Beaten recently (by an earlier run of this task): the next one is due then.
                await asyncio.sleep(max(0.0, self.last_beat + period - self.loop.time()))
            self.last_beat = self.loop.time()
            try:
                # The urgent lane: a beat must not wait behind a queue of usage rows.
                await run_db(reservation_holder_beat, token=holder_token())
            except Exception:
                log.warning("could not beat the holder heartbeat", exc_info=True)


_groups: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _GroupCommit] = (
    weakref.WeakKeyDictionary()
)
_heartbeats: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Heartbeat] = (
    weakref.WeakKeyDictionary()
)


def _group() -> _GroupCommit:
    loop = asyncio.get_running_loop()
    group = _groups.get(loop)
    if group is None:
        group = _groups[loop] = _GroupCommit(loop)
    return group


def _holding_started(hold_: Hold) -> None:
    if under_sync_caller():
        return  # its loop ends with the call: the request is settled before it does
    loop = asyncio.get_running_loop()
    heartbeat = _heartbeats.get(loop)
    if heartbeat is None:
        heartbeat = _heartbeats[loop] = _Heartbeat(loop)
    hold_.heartbeat = heartbeat
    heartbeat.started(hold_)


def _holding_done(hold_: Hold) -> None:
    if hold_.heartbeat is not None:
        hold_.heartbeat.done(hold_)


def holds_in_flight() -> int:
    """Holds this process vouches for now (tests, health)."""
    return sum(len(heartbeat.holds) for heartbeat in _heartbeats.values())


def forget_holder_at_exit() -> None:
    """The process stops, having settled what it could: a hold still left (the database was
    down) is the sweep's, without waiting for this holder's heartbeat to go stale."""
    if not _heartbeats:
        return  # never held anything (a management command, a test process)
    try:
        reservation_holder_forget(token=holder_token())
    except Exception:
        # The database is gone or down: the holder row goes stale, and the sweep does the rest.
        log.debug("could not forget the holder %s at exit", holder_token(), exc_info=True)
