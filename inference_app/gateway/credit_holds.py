"""Holding each request's worst-case cost without a database transaction per request.

Lesson 1 of DESIGN.md: reserve before the engine call, settle after. Made per request, the
reservation is a transaction on the request path: the largest single cost of a request in
bench/profile.py (about 1.6 ms of CPU on SQLite; on PostgreSQL, a commit waiting for its fsync).
So, like a telephone network's credit control with its granted units, the gateway reserves a
slice of the organization's credits for SLICE_REQUESTS worst cases at a time (one ordinary
reservation, billing.quota.reserve_credits, under the slice's own id) and hands out worst cases
from it in memory.

What stays true:
- Every admitted request's worst case is covered by a hold in the database until its usage row
  is committed: a slice is released only once every request it admitted has been settled
  (settlement.py writes the rows; this module waits for them).
- No more is refused than before: an organization that cannot afford a slice gets per-request
  reservations, exactly as without slices, after the unused room of this process's closed
  slices has been given back.
- Slices are short-lived: one closes when it is used up (at most SLICE_REQUESTS requests),
  idle for IDLE_SECONDS or older than MAX_AGE_SECONDS, and is released when its last request
  is settled. So a balance lowered outside the gateway (an adjustment, an expiry) is seen by
  new requests within MAX_AGE_SECONDS, as a revoked key is within GATEWAY_CACHE_SECONDS. `drain()` releases
  the idle ones at once (tests, shutdown); at exit every slice left is released. A process
  killed outright leaves its slices to the stale-hold sweep, like per-request holds.

Code run by sync callers (the test Client, management commands) reserves per request: its event
loop ends with the call, and nothing would release a slice.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
import weakref

from billing.errors import QuotaExceeded
from billing.quota import release_reservation, reservation_shrink, reserve_credits
from inference_app.gateway.db_threads import run_db, run_db_background, under_sync_caller

log = logging.getLogger(__name__)

SLICE_REQUESTS = 32  # a slice holds this many worst cases of the request that opens it
IDLE_SECONDS = 2.0
# A slice was reserved against the balance of its time; a later change (an admin's adjustment,
# an expiry) reaches new requests once the slice closes, so slices hand out for this long at most.
MAX_AGE_SECONDS = 2.0


@dataclasses.dataclass(eq=False)
class _Slice:
    id: str  # the request id of its Reservation row
    organization_id: int
    size: int
    taken: int = 0  # worst cases handed out and not given back
    in_flight: int = 0  # requests admitted from it whose usage is not yet written
    open: bool = True  # still handing out worst cases
    opened_at: float = 0.0
    last_used: float = 0.0
    idle_check: asyncio.TimerHandle | None = None


class Hold:
    """One admitted request's worst case: a share of a slice, or a reservation of its own."""

    def __init__(self, *, request_id: str, amount_micros: int, slice_: _Slice | None) -> None:
        self.request_id = request_id
        self.amount_micros = amount_micros
        self._slice = slice_

    @property
    def from_slice(self) -> bool:
        return self._slice is not None

    async def release_unused(self) -> None:
        """Nothing will be charged (refused, never answered): give the worst case back."""
        if self._slice is None:
            await run_db(release_reservation, request_id=self.request_id)
            return
        self._slice.taken -= self.amount_micros
        _slices().request_done(self._slice)

    def settled_by(self, written: asyncio.Future | None) -> None:
        """The usage row is on its way: the slice may go once it is written (`written` done).

        (A reservation of its own is released by the settlement itself.)"""
        if self._slice is None:
            return
        slice_, slices = self._slice, _slices()
        if written is None or written.done():
            slices.request_done(slice_)
        else:
            written.add_done_callback(lambda _: slices.request_done(slice_))


async def hold(*, organization_id: int, request_id: str, amount_micros: int) -> Hold:
    """Hold `amount_micros` for `request_id`, or raise QuotaExceeded and hold nothing."""
    if under_sync_caller():
        return await _hold_of_its_own(organization_id, request_id, amount_micros)
    return await _slices().hold(
        organization_id=organization_id, request_id=request_id, amount_micros=amount_micros
    )


async def _hold_of_its_own(organization_id: int, request_id: str, amount_micros: int) -> Hold:
    """A reservation for this request alone, as without slices (or QuotaExceeded)."""
    await run_db(
        reserve_credits,
        organization_id=organization_id,
        request_id=request_id,
        amount_micros=amount_micros,
    )
    return Hold(request_id=request_id, amount_micros=amount_micros, slice_=None)


async def drain() -> None:
    """Release every slice that no request is using (tests, graceful shutdown)."""
    await _slices().release_idle()


def release_all_at_exit() -> None:
    """Release what every event loop still holds (the loops are gone: synchronously)."""
    for slices in list(_by_loop.values()):
        for slice_ in list(slices.live):
            try:
                release_reservation(request_id=slice_.id)
            except Exception:
                log.exception("could not release credit slice %s at exit", slice_.id)
        slices.live.clear()
        slices.open.clear()


class _Slices:
    """The slices of one event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.open: dict[int, _Slice] = {}  # organization id -> the slice handing out
        self.live: set[_Slice] = set()  # every slice whose hold is not yet released
        self.locks: dict[int, asyncio.Lock] = {}
        self.no_slice_until: dict[int, float] = {}  # organization id -> loop time
        self.releases: set[asyncio.Task] = set()

    def _take(self, organization_id: int, amount: int) -> _Slice | None:
        slice_ = self.open.get(organization_id)
        if slice_ is None:
            return None
        if self.loop.time() - slice_.opened_at > MAX_AGE_SECONDS:
            self._close(slice_)  # held before a change of balance it has not seen
            return None
        if slice_.size - slice_.taken < amount:
            return None
        slice_.taken += amount
        slice_.in_flight += 1
        slice_.last_used = self.loop.time()
        return slice_

    async def hold(self, *, organization_id: int, request_id: str, amount_micros: int) -> Hold:
        slice_ = self._take(organization_id, amount_micros)
        if slice_ is None and self.loop.time() >= self.no_slice_until.get(organization_id, 0):
            lock = self.locks.setdefault(organization_id, asyncio.Lock())
            async with lock:  # one slice opened at a time per organization
                slice_ = self._take(organization_id, amount_micros)
                if slice_ is None:
                    slice_ = await self._open_slice(organization_id, amount_micros)
                if slice_ is None:  # not affordable: don't ask again for every request
                    self.no_slice_until[organization_id] = self.loop.time() + IDLE_SECONDS
        if slice_ is None:  # near the limit: a reservation of its own, or QuotaExceeded
            await self._give_back_unused(organization_id)
            return await _hold_of_its_own(organization_id, request_id, amount_micros)
        return Hold(request_id=request_id, amount_micros=amount_micros, slice_=slice_)

    async def _open_slice(self, organization_id: int, amount: int) -> _Slice | None:
        """A new slice with `amount` taken from it; None when the organization cannot afford
        one."""
        used_up = self.open.pop(organization_id, None)
        if used_up is not None:
            self._close(used_up)
        slice_ = _Slice(
            id=f"slice-{uuid.uuid4().hex}",
            organization_id=organization_id,
            size=amount * SLICE_REQUESTS,
        )
        try:
            await run_db(
                reserve_credits,
                organization_id=organization_id,
                request_id=slice_.id,
                amount_micros=slice_.size,
            )
        except QuotaExceeded:
            return None
        self.live.add(slice_)
        self.open[organization_id] = slice_
        slice_.taken, slice_.in_flight = amount, 1
        slice_.opened_at = slice_.last_used = self.loop.time()
        return slice_

    async def _give_back_unused(self, organization_id: int) -> None:
        """Before a per-request reservation: the unused room of this organization's slices,
        given back in the database before the reservation is tried."""
        for slice_ in [s for s in self.live if s.organization_id == organization_id]:
            self._close(slice_)  # released now if nothing is in flight
            if slice_ in self.live and slice_.taken < slice_.size:
                slice_.size = slice_.taken
                await run_db(reservation_shrink, request_id=slice_.id, amount_micros=slice_.taken)
        while self.releases:
            await asyncio.gather(*list(self.releases), return_exceptions=True)

    def _close(self, slice_: _Slice) -> None:
        """No more takers; released once its last request is settled."""
        slice_.open = False
        if self.open.get(slice_.organization_id) is slice_:
            del self.open[slice_.organization_id]
        if slice_.in_flight == 0:
            self._release(slice_)

    def request_done(self, slice_: _Slice) -> None:
        slice_.in_flight -= 1
        if slice_.in_flight:
            return
        if not slice_.open:
            self._release(slice_)
        elif slice_.idle_check is None:
            slice_.idle_check = self.loop.call_later(IDLE_SECONDS, self._check_idle, slice_)

    def _check_idle(self, slice_: _Slice) -> None:
        slice_.idle_check = None
        if not slice_.open or slice_.in_flight:
            return  # closed meanwhile, or busy: its next idle moment schedules a check
        idle_for = self.loop.time() - slice_.last_used
        if idle_for >= IDLE_SECONDS:
            self._close(slice_)
        else:
            slice_.idle_check = self.loop.call_later(
                IDLE_SECONDS - idle_for, self._check_idle, slice_
            )

    def _release(self, slice_: _Slice) -> None:
        if slice_ not in self.live:
            return
        self.live.discard(slice_)
        if slice_.idle_check is not None:
            slice_.idle_check.cancel()
            slice_.idle_check = None
        task = self.loop.create_task(_release_hold(slice_.id))
        self.releases.add(task)
        task.add_done_callback(self.releases.discard)

    async def release_idle(self) -> None:
        for slice_ in list(self.live):
            if slice_.in_flight == 0:
                self._close(slice_)
        while self.releases:
            await asyncio.gather(*list(self.releases), return_exceptions=True)


async def _release_hold(slice_id: str) -> None:
    try:
        await run_db_background(release_reservation, request_id=slice_id)
    except Exception:
        # Left to the stale-hold sweep (billing.quota.reservations_release_stale).
        log.exception("could not release credit slice %s", slice_id)


_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Slices] = (
    weakref.WeakKeyDictionary()
)


def _slices() -> _Slices:
    loop = asyncio.get_running_loop()
    slices = _by_loop.get(loop)
    if slices is None:
        slices = _by_loop[loop] = _Slices(loop)
    return slices
