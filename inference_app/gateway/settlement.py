"""Writing a finished call's usage row off the response path, without ever losing it.

The reservation made before the engine call already bounds what a request can cost, so the
client need not wait for the usage row: the slots are released at once, the response goes out,
and the row is written (and the reservation replaced by the real charge) in the background.
Each write is retried on transient database errors. Reports still pending when the process
exits are settled synchronously by an atexit hook; replays are harmless because settlement is
idempotent per request id.
"""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import logging
import time

from billing.usage import UsageReport, settle_usage
from inference_app.gateway.db_threads import run_db, run_db_background, under_sync_caller

log = logging.getLogger(__name__)

RETRY_DELAYS_SECONDS = (0.2, 1.0, 5.0)

_pending: dict[str, UsageReport] = {}
_tasks: set[asyncio.Task] = set()


async def settle(report: UsageReport) -> asyncio.Task | None:
    """Settle `report`: in the background (returns the task) when an ASGI server runs the loop,
    at once when sync code does (its loop ends with the call, and the row is expected after)."""
    if under_sync_caller():
        try:
            await run_db(_settle_now, report)
        except Exception:
            log.exception("could not settle usage: %r", report)
        return None
    return submit(report)


def submit(report: UsageReport) -> asyncio.Task:
    """Settle `report` in the background; returns the task (awaiting it is optional)."""
    _pending[report.request_id] = report
    # A fresh context: the request's thread-sensitive executor is gone by the time this runs.
    task = asyncio.get_running_loop().create_task(_write(report), context=contextvars.Context())
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
    return task


async def drain() -> None:
    """Wait until every submitted report is written (tests, graceful shutdown)."""
    while _tasks:
        await asyncio.gather(*list(_tasks), return_exceptions=True)


def pending_count() -> int:
    return len(_pending)


async def _write(report: UsageReport) -> None:
    try:
        for attempt, delay in enumerate((0.0, *RETRY_DELAYS_SECONDS)):
            if delay:
                await asyncio.sleep(delay)
            try:
                await run_db_background(_settle_now, report)
                return
            except Exception:
                if attempt == len(RETRY_DELAYS_SECONDS):
                    log.exception("could not settle usage, giving up: %r", report)
                else:
                    log.warning("settling %s failed; retrying", report.request_id, exc_info=True)
    finally:
        _pending.pop(report.request_id, None)


def _settle_now(report: UsageReport) -> None:
    started = time.monotonic()
    settle_usage(report)
    log.debug("settled %s in %.1f ms", report.request_id, (time.monotonic() - started) * 1000)


def settle_at_exit(report: UsageReport) -> None:
    """Queue a report for the exit hook (the event loop is gone: nothing runs in it any more)."""
    _pending[report.request_id] = report


@atexit.register
def _settle_leftovers() -> None:
    for report in list(_pending.values()):
        try:
            settle_usage(report)
        except Exception:
            log.exception("could not settle usage at exit: %r", report)
    _pending.clear()
