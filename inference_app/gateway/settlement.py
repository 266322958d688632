"""Writing a finished call's usage row off the response path, without ever losing it.

The reservation made before the engine call already bounds what a request can cost, so the
client need not wait for the usage row: the slots are released at once, the response goes out,
and the row is written (and the reservation replaced by the real charge) in the background.

Rows are written in batches: what finishes within BATCH_WINDOW_SECONDS of the first report is
settled in one transaction (billing.usage.settle_usage_batch), which costs about as much as one
row alone (measured by bench/billing_hotpath.py: 2.4 ms → 0.35 ms per row on SQLite, 6.6 →
0.7 ms on PostgreSQL, at 20 a batch). A batch that fails is settled row by row, each retried on
transient database errors, so one bad report cannot hold the others back. Reports still pending
when the process exits are settled synchronously by an atexit hook; replays are harmless
because settlement is idempotent per request id.
"""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import logging
import time
import weakref

from billing.usage import UsageReport, settle_usage, settle_usage_batch
from inference_app.gateway import credit_holds
from inference_app.gateway.db_threads import run_db, run_db_background, under_sync_caller

log = logging.getLogger(__name__)

# Long enough to gather several rows under load, short enough that a reader (the usage page, a
# test) rarely notices; the hold of a finished request stays that much longer.
BATCH_WINDOW_SECONDS = 0.05
MAX_BATCH = 200
RETRY_DELAYS_SECONDS = (0.2, 1.0, 5.0)

_pending: dict[str, UsageReport] = {}
_tasks: set[asyncio.Task] = set()


class _Batch:
    """The reports of one event loop waiting for the next write, and the task writing them."""

    def __init__(self) -> None:
        self.waiting: list[tuple[UsageReport, asyncio.Future]] = []
        self.writer: asyncio.Task | None = None


_batches: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Batch] = weakref.WeakKeyDictionary()


async def settle(report: UsageReport) -> asyncio.Future | None:
    """Settle `report`: in the background (returns a future done once it is written) when an
    ASGI server runs the loop, at once when sync code does (its loop ends with the call, and
    the row is expected after)."""
    if under_sync_caller():
        try:
            await run_db(_settle_now, [report])
        except Exception:
            log.exception("could not settle usage: %r", report)
        return None
    return submit(report)


def submit(report: UsageReport) -> asyncio.Future:
    """Queue `report` for the next batch; the future is done once it is written (or given up)."""
    loop = asyncio.get_running_loop()
    _pending[report.request_id] = report
    batch = _batches.get(loop)
    if batch is None:
        batch = _batches[loop] = _Batch()
    written = loop.create_future()
    batch.waiting.append((report, written))
    if batch.writer is None or batch.writer.done():
        # A fresh context: the request's thread-sensitive executor is gone by the time it runs.
        batch.writer = loop.create_task(_write_batches(batch), context=contextvars.Context())
        _tasks.add(batch.writer)
        batch.writer.add_done_callback(_tasks.discard)
    return written


async def drain() -> None:
    """Wait until every submitted report is written and the credit slices no request uses are
    released (tests, graceful shutdown)."""
    while _tasks:
        await asyncio.gather(*list(_tasks), return_exceptions=True)
    await credit_holds.drain()


def pending_count() -> int:
    return len(_pending)


async def _write_batches(batch: _Batch) -> None:
    while batch.waiting:
        if len(batch.waiting) < MAX_BATCH:
            await asyncio.sleep(BATCH_WINDOW_SECONDS)
        taken, batch.waiting = batch.waiting[:MAX_BATCH], batch.waiting[MAX_BATCH:]
        try:
            await _write(taken)
        finally:
            for report, written in taken:
                _pending.pop(report.request_id, None)
                if not written.done():
                    written.set_result(None)


async def _write(taken: list[tuple[UsageReport, asyncio.Future]]) -> None:
    reports = [report for report, _ in taken]
    try:
        await run_db_background(_settle_now, reports)
        return
    except Exception:
        if len(reports) == 1:
            log.warning("settling %s failed; retrying", reports[0].request_id, exc_info=True)
        else:
            log.warning(
                "settling a batch of %d failed; one by one now", len(reports), exc_info=True
            )
    for report in reports:
        await _write_alone(report)


async def _write_alone(report: UsageReport) -> None:
    for attempt, delay in enumerate(RETRY_DELAYS_SECONDS):
        await asyncio.sleep(delay)
        try:
            await run_db_background(_settle_now, [report])
            return
        except Exception:
            if attempt == len(RETRY_DELAYS_SECONDS) - 1:
                log.exception("could not settle usage, giving up: %r", report)
            else:
                log.warning("settling %s failed; retrying", report.request_id, exc_info=True)


def _settle_now(reports: list[UsageReport]) -> None:
    started = time.monotonic()
    settle_usage_batch(reports)
    log.debug("settled %d in %.1f ms", len(reports), (time.monotonic() - started) * 1000)


def settle_at_exit(report: UsageReport) -> None:
    """Queue a report for the exit hook (the event loop is gone: nothing runs in it any more)."""
    _pending[report.request_id] = report


@atexit.register
def _settle_leftovers() -> None:
    leftovers = list(_pending.values())
    _pending.clear()
    try:
        if leftovers:
            settle_usage_batch(leftovers)
    except Exception:
        log.warning("settling %d reports at exit failed; one by one now", len(leftovers))
        for report in leftovers:
            try:
                settle_usage(report)
            except Exception:
                log.exception("could not settle usage at exit: %r", report)
    # Only now, with every charge written, may the slices that covered them go.
    credit_holds.release_all_at_exit()
