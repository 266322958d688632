"""Running ORM services from the gateway's async code on reusable threads.

`sync_to_async`'s default (thread-sensitive) mode gives every request a fresh thread and so a
fresh database connection. The gateway's per-request work runs on long-lived threads instead,
whose connections are kept per DB_CONN_MAX_AGE as in a WSGI worker, in two lanes:
- urgent (`run_db`): what a waiting request needs before it can go on (reserve, lookups);
- background (`run_db_background`): what can follow the response (usage rows).
PostgreSQL gets a pool of threads per lane, so transactions run in parallel. SQLite gets one
thread for both lanes, urgent work first: SQLite serialises writers anyway, and one connection
never waits on (or, with the in-memory test database, fails on) another one's lock.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import functools
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any

from asgiref.sync import AsyncToSync, sync_to_async
from django.db import close_old_connections, connection

# Under sustained load one background job runs after this many urgent ones, so usage rows
# (and the release of their reservations) cannot starve.
URGENT_STREAK = 8
BACKGROUND_THREADS = 4
POOL_CONNECTION_SECONDS = 60


class _SingleThread:
    """One worker thread with an urgent and a background queue."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._queues: dict[bool, collections.deque] = {
            True: collections.deque(),
            False: collections.deque(),
        }
        self._ready = threading.Condition()
        self._thread: threading.Thread | None = None
        self._streak = 0

    def submit(self, urgent: bool, function: Callable, args: tuple, kwargs: dict) -> Future:
        future: Future = Future()
        with self._ready:
            self._queues[urgent].append((future, function, args, kwargs))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._ready.notify()
        return future

    def _next_job(self):
        with self._ready:
            while not self._queues[True] and not self._queues[False]:
                self._ready.wait()
            take_urgent = bool(self._queues[True]) and (
                not self._queues[False] or self._streak < URGENT_STREAK
            )
            self._streak = self._streak + 1 if take_urgent else 0
            return self._queues[take_urgent].popleft()

    def _run(self) -> None:
        while True:
            future, function, args, kwargs = self._next_job()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(function(*args, **kwargs))
            except BaseException as exc:
                future.set_exception(exc)


class _Lane(Executor):
    def __init__(self, worker: _SingleThread, urgent: bool) -> None:
        self._worker = worker
        self._urgent = urgent

    def submit(self, fn, /, *args, **kwargs) -> Future:
        return self._worker.submit(self._urgent, fn, args, kwargs)


_lanes: dict[bool, Executor | None] | None = None


def _executor(urgent: bool) -> Executor | None:
    """The executor for a lane of this database; None means asyncio's default pool."""
    global _lanes
    if _lanes is None:
        if connection.vendor == "sqlite":
            worker = _SingleThread("gateway-sqlite")
            _lanes = {True: _Lane(worker, True), False: _Lane(worker, False)}
        else:
            background = ThreadPoolExecutor(BACKGROUND_THREADS, thread_name_prefix="gateway-bg")
            _lanes = {True: None, False: background}
    return _lanes[urgent]


def _with_fresh_connection(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    # A SQLite connection is a file handle that never goes stale; reopening it would cost a
    # millisecond a call. Server connections are dropped when broken or past their age.
    if connection.vendor == "sqlite":
        return function(*args, **kwargs)
    close_old_connections()
    try:
        return function(*args, **kwargs)
    finally:
        _keep_pool_connection()


def _keep_pool_connection() -> None:
    """CONN_MAX_AGE=0 means "one connection per request", for Django's per-request threads.
    These few pool threads serve request after request: opening a PostgreSQL connection for
    every reserve and every usage row would cost more than the work itself, so a pool thread
    keeps its connection for POOL_CONNECTION_SECONDS (broken ones are still replaced)."""
    if connection.connection is None or connection.settings_dict["CONN_MAX_AGE"]:
        return
    if getattr(connection, "_gateway_kept", None) is not connection.connection:
        connection._gateway_kept = connection.connection
        connection.close_at = time.monotonic() + POOL_CONNECTION_SECONDS


def under_sync_caller() -> bool:
    """Is this event loop one that `async_to_sync` made for sync code (Django's test Client, a
    management command)? Then the ORM belongs to that code's thread: its connection, its
    transaction, and a loop that ends with the call.

    (Not `AsyncToSync.executors.current`: that is also set under daphne whenever a sync
    middleware sits above the view, and would send every request to a thread of its own.)"""
    return asyncio.get_running_loop() in AsyncToSync.loop_thread_executors


async def _run(urgent: bool, function: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
    loop = asyncio.get_running_loop()
    if loop in AsyncToSync.loop_thread_executors:  # under_sync_caller()
        return await sync_to_async(function, thread_sensitive=True)(*args, **kwargs)
    # What sync_to_async(thread_sensitive=False, executor=...) does, without building its
    # wrapper object on every call (a tenth of a millisecond a request, twice): the function
    # runs in a copy of the caller's context, on the lane's thread. (Django's connections are
    # thread-local, not context-local, so nothing else of asgiref's is needed here.)
    context = contextvars.copy_context()
    return await loop.run_in_executor(
        _executor(urgent),
        functools.partial(context.run, _with_fresh_connection, function, *args, **kwargs),
    )


async def run_db(function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """`function(*args, **kwargs)` on the urgent lane: a request is waiting for it."""
    return await _run(True, function, args, kwargs)


async def run_db_background(function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """`function(*args, **kwargs)` on the background lane: nobody is waiting for it."""
    return await _run(False, function, args, kwargs)
