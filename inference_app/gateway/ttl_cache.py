"""A small in-process cache whose entries expire after a few seconds.

The hot path (key → caller, model id → deployments) would otherwise hit the database several
times per request; a short TTL keeps revocations and catalog edits effective within seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

_MISSING = object()


class TTLCache:
    def __init__(self, ttl_seconds: float, max_entries: int = 10_000) -> None:
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self._entries: dict[Any, tuple[float, Any]] = {}

    def get(self, key: Any, default: Any = None) -> Any:
        entry = self._entries.get(key, _MISSING)
        if entry is _MISSING:
            return default
        expires_at, value = entry
        if expires_at < time.monotonic():
            self._entries.pop(key, None)
            return default
        return value

    def set(self, key: Any, value: Any, ttl_seconds: float | None = None) -> None:
        if len(self._entries) >= self.max_entries:
            self._evict()
        ttl = self.ttl_seconds if ttl_seconds is None else ttl_seconds
        self._entries[key] = (time.monotonic() + ttl, value)

    def discard(self, key: Any) -> None:
        self._entries.pop(key, None)

    def discard_where(self, predicate: Callable[[Any, Any], bool]) -> None:
        """Drop every entry for which predicate(key, value) holds (a scan: for rare events).

        Safe to call from a sync view's thread while the event loop uses the cache: the copy
        is taken in one step and entries are popped, not deleted.
        """
        for key, (_, value) in list(self._entries.items()):
            if predicate(key, value):
                self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()

    def _evict(self) -> None:
        now = time.monotonic()
        for key in [k for k, (expires_at, _) in self._entries.items() if expires_at < now]:
            del self._entries[key]
        if len(self._entries) >= self.max_entries:
            # Still full of live entries: drop the oldest half rather than grow without bound.
            for key in list(self._entries)[: self.max_entries // 2]:
                del self._entries[key]
