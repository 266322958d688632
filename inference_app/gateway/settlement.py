"""Writing a finished call's usage row off the response path, without ever losing it.

The reservation made before the engine call already bounds what a request can cost, and it
stays in the database until the usage row replaces it (in one transaction), so the client need
not wait for the row: the slots are released at once, the response goes out, and the row is
written in the background.

Rows are written in batches: what finishes within BATCH_WINDOW_SECONDS of the first report is
settled in one transaction (billing.usage.settle_usage_batch), which costs about as much as one
row alone. A report is never given up while the process lives:
- a batch the database refuses because of its content (a bad row) is split in halves until the
  bad rows are alone, so the others are written at once, not after a back-off;
- a batch that fails because the database is unreachable is not split (every half would fail
  too, each after a connection timeout): it waits and is tried again;
- what failed is retried with exponential back-off (RETRY_FIRST_SECONDS doubling up to
  RETRY_MAX_SECONDS) by a task of its own, forever, while new reports keep being written.
At exit what is still pending is tried once more, synchronously. A report that never got
written (the process was killed, or the database stayed down) still has its reservation, which
names this process: the sweep settles it as `lost` (billing.lost). Replays are harmless:
settlement is idempotent per request id.

A report travels with its call's trace report (traces.CallReport, None when traces are off):
the transaction that writes the usage rows writes their calls (call_records.calls_record_for),
only for the rows it writes, each with its row's cost.
"""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import dataclasses
import logging
import time
import weakref

from django.conf import settings
from django.db import InterfaceError, OperationalError

from billing.models import UsageRecord
from billing.usage import UsageReport, settle_usage_batch
from inference_app.gateway import call_records, credit_holds
from inference_app.gateway.db_threads import run_db, run_db_background, under_sync_caller
from traces.reports import CallReport

log = logging.getLogger(__name__)

# Long enough to gather several rows under load, short enough that a reader (the usage page, a
# test) rarely notices; the hold of a finished request stays that much longer.
BATCH_WINDOW_SECONDS = 0.05
MAX_BATCH = 200
RETRY_FIRST_SECONDS = 0.5
RETRY_MAX_SECONDS = 30.0

# Request id -> (usage report, call report): what is not written yet, for the exit hook.
_pending: dict[str, tuple[UsageReport, CallReport | None]] = {}


@dataclasses.dataclass(eq=False)
class _Waiting:
    report: UsageReport
    written: asyncio.Future  # done once the row is committed
    call: CallReport | None = None
    attempts: int = 0
    due: float = 0.0  # loop time of the next attempt (retries)


class _Writer:
    """The reports of one event loop waiting for the next write, those waiting for a retry, and
    the tasks writing each."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.waiting: list[_Waiting] = []
        self.retrying: list[_Waiting] = []
        self.writer: asyncio.Task | None = None
        self.retrier: asyncio.Task | None = None

    def start(self, name: str) -> None:
        task = getattr(self, name)
        if task is None or task.done():
            run = self._write_batches if name == "writer" else self._retry
            # A fresh context: nothing of the request that happened to start it.
            setattr(self, name, self.loop.create_task(run(), context=contextvars.Context()))

    def busy(self) -> list[asyncio.Task]:
        return [task for task in (self.writer, self.retrier) if task and not task.done()]

    async def _write_batches(self) -> None:
        while self.waiting:
            if len(self.waiting) < MAX_BATCH:
                await asyncio.sleep(BATCH_WINDOW_SECONDS)
            taken, self.waiting = self.waiting[:MAX_BATCH], self.waiting[MAX_BATCH:]
            self._retry_later(await _write(taken))

    async def _retry(self) -> None:
        while self.retrying:
            next_due = min(item.due for item in self.retrying)
            await asyncio.sleep(max(0.0, next_due - self.loop.time()))
            now = self.loop.time()
            due = [item for item in self.retrying if item.due <= now]
            self.retrying = [item for item in self.retrying if item.due > now]
            for start in range(0, len(due), MAX_BATCH):
                self._retry_later(await _write(due[start : start + MAX_BATCH]))

    def _retry_later(self, failed: list[_Waiting]) -> None:
        for item in failed:
            item.attempts += 1
            delay = min(RETRY_FIRST_SECONDS * 2 ** (item.attempts - 1), RETRY_MAX_SECONDS)
            item.due = self.loop.time() + delay
            self.retrying.append(item)
        if failed:
            self.start("retrier")


_writers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Writer] = (
    weakref.WeakKeyDictionary()
)


async def settle(report: UsageReport, call: CallReport | None = None) -> asyncio.Future | None:
    """Settle `report`: in the background (returns a future done once it is written) when an
    ASGI server runs the loop, at once when sync code does (its loop ends with the call, and
    the row is expected after)."""
    if under_sync_caller():
        try:
            await run_db(_settle_now, [(report, call)])
        except Exception:
            # Its reservation stays, naming this process: the sweep settles it as `lost`.
            log.exception("could not settle usage: %r", report)
        return None
    return submit(report, call)


def submit(report: UsageReport, call: CallReport | None = None) -> asyncio.Future:
    """Queue `report` (and its call) for the next batch; the future is done once it is
    written."""
    loop = asyncio.get_running_loop()
    _pending[report.request_id] = (report, call)
    writer = _writers.get(loop)
    if writer is None:
        writer = _writers[loop] = _Writer(loop)
    written = loop.create_future()
    writer.waiting.append(_Waiting(report=report, written=written, call=call))
    writer.start("writer")
    return written


async def drain(timeout: float | None = None) -> None:
    """Wait until every submitted report is written (tests, graceful shutdown); with a
    timeout, give up waiting (not writing) after that many seconds."""
    writer = _writers.get(asyncio.get_running_loop())
    deadline = None if timeout is None else time.monotonic() + timeout
    while writer is not None and writer.busy():
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            return
        await asyncio.wait(writer.busy(), timeout=left)


def pending_count() -> int:
    return len(_pending)


async def _write(items: list[_Waiting]) -> list[_Waiting]:
    """Write `items` in as few transactions as their content allows; returns those that
    failed (each alone, or all of them when the database could not be reached)."""
    try:
        await run_db_background(_settle_now, [(item.report, item.call) for item in items])
    except (OperationalError, InterfaceError):
        log.warning("settling %d rows failed: database unreachable; retrying", len(items))
        return items
    except Exception:
        if len(items) == 1:
            log.exception("settling %s failed; retrying", items[0].report.request_id)
            return items
        middle = len(items) // 2
        return await _write(items[:middle]) + await _write(items[middle:])
    for item in items:
        _pending.pop(item.report.request_id, None)
        if not item.written.done():
            item.written.set_result(None)
    return []


def _settle_now(entries: list[tuple[UsageReport, CallReport | None]]) -> None:
    """Write the usage rows of `entries` (usage report, call report) and, in the same
    transaction, the calls of the rows written now (replays have theirs already)."""
    started = time.monotonic()
    _settle_with_calls(entries)
    log.debug("settled %d in %.1f ms", len(entries), (time.monotonic() - started) * 1000)


def _settle_with_calls(entries: list[tuple[UsageReport, CallReport | None]]) -> None:
    # First one wins for a request id seen twice in a batch, as for its usage row.
    calls: dict[str, CallReport] = {}
    for report, call in entries:
        if call is not None:
            calls.setdefault(report.request_id, call)

    def on_written(records: list[UsageRecord]) -> None:
        # Traces off: no call rows at all (not even default_on_written's minimal ones).
        if settings.TRACES_ENABLED:
            call_records.calls_record_for(records, calls)

    settle_usage_batch([report for report, _ in entries], on_written=on_written)


def settle_at_exit(report: UsageReport, call: CallReport | None = None) -> None:
    """Queue a report for the exit hook (the event loop is gone: nothing runs in it any more)."""
    _pending[report.request_id] = (report, call)


@atexit.register
def _settle_leftovers() -> None:
    leftovers = list(_pending.values())
    _pending.clear()
    try:
        if leftovers:
            _settle_with_calls(leftovers)
    except Exception:
        log.warning("settling %d reports at exit failed; one by one now", len(leftovers))
        for entry in leftovers:
            report = entry[0]
            try:
                _settle_with_calls([entry])
            except Exception:
                # The reservation stays: the sweep settles the request as `lost`.
                log.exception("could not settle usage at exit: %r", report)
    credit_holds.forget_holder_at_exit()
