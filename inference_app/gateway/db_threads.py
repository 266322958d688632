"""Running ORM services from the gateway's async code on a reusable pool of threads.

`sync_to_async`'s default (thread-sensitive) mode gives every request a fresh thread and so a
fresh database connection; the gateway's per-request work (reserve, settle) instead runs on the
shared pool, where connections are kept per DB_CONN_MAX_AGE like in a WSGI worker. Each call
first drops connections that are broken or past their age, as Django's request signals would.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.db import close_old_connections


def _with_fresh_connection(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    close_old_connections()
    return function(*args, **kwargs)


async def run_db(function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """`function(*args, **kwargs)` on the pool; one call = one transaction's worth of work."""
    return await sync_to_async(_with_fresh_connection, thread_sensitive=False)(
        function, *args, **kwargs
    )
