"""Running ORM services from the gateway's async code on reusable threads.

`sync_to_async`'s default (thread-sensitive) mode gives every request a fresh thread and so a
fresh database connection. The gateway's per-request work (reserve, settle, lookups) runs on
long-lived threads instead, whose connections are kept per DB_CONN_MAX_AGE as in a WSGI worker:
- PostgreSQL: a pool of threads, so transactions of different requests run in parallel;
- SQLite: one thread, because SQLite serialises writers anyway and a single connection never
  waits on (or, with the shared in-memory test database, fails on) another one's lock.
Each call first drops connections that are broken or past their age, as Django's request
signals would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import AsyncToSync, sync_to_async
from django.db import close_old_connections, connection

_sqlite_executor: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor | None:
    """The executor for this database; None means asyncio's default pool."""
    global _sqlite_executor
    if connection.vendor != "sqlite":
        return None
    if _sqlite_executor is None:
        _sqlite_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gateway-sqlite")
    return _sqlite_executor


def _with_fresh_connection(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    # A SQLite connection is a file handle that never goes stale; reopening it would cost a
    # millisecond a call. Server connections follow CONN_MAX_AGE and health as usual.
    if connection.vendor != "sqlite":
        close_old_connections()
    return function(*args, **kwargs)


def under_sync_caller() -> bool:
    """Is this event loop run by `async_to_sync` for sync code (Django's test Client, a
    management command)? Then the ORM belongs to that code's thread: its connection, its
    transaction, and a loop that ends with the call."""
    if getattr(AsyncToSync.executors, "current", None) is not None:
        return True
    return asyncio.get_running_loop() in AsyncToSync.loop_thread_executors


async def run_db(function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """`function(*args, **kwargs)` on a gateway DB thread; one call = one unit of work."""
    if under_sync_caller():
        return await sync_to_async(function, thread_sensitive=True)(*args, **kwargs)
    return await sync_to_async(
        _with_fresh_connection, thread_sensitive=False, executor=_executor()
    )(function, *args, **kwargs)
