"""Make a call row as writable as its usage row: whatever a client sent or a model answered.

PostgreSQL's jsonb refuses `\\u0000` and text refuses NUL; a lone surrogate cannot be encoded
at all. One such answer must never make a usage row unwritable (they share a transaction), so
every string is cleaned and every column kept within its size before the row is built.
"""

from __future__ import annotations

import re

_BAD_CHARS = re.compile(r"[\x00\ud800-\udfff]")
MAX_INT32 = 2**31 - 1
# A data: URL (an inline image) is replaced by a note: the body is for reading, not for
# keeping megabytes of base64.
_DATA_URL = re.compile(r"^data:([\w/+.-]+);base64,", re.ASCII)
DATA_URL_KEEP_CHARS = 200


def clean_text(value: str, max_length: int | None = None) -> str:
    if _BAD_CHARS.search(value):
        value = _BAD_CHARS.sub("\ufffd", value)
    if max_length is not None and len(value) > max_length:
        value = value[:max_length]
    return value


def clean_json(value, depth: int = 0):
    """A JSON-serialisable copy of `value` with cleaned strings and inline images omitted."""
    if isinstance(value, str):
        if len(value) > DATA_URL_KEEP_CHARS and (match := _DATA_URL.match(value)):
            size_kb = len(value) * 3 // 4 // 1024
            return f"[{match.group(1)}, {size_kb} KB omitted]"
        return clean_text(value)
    if isinstance(value, dict):
        if depth > 64:
            return "[too deep]"
        return {clean_text(str(k)): clean_json(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if depth > 64:
            return "[too deep]"
        return [clean_json(item, depth + 1) for item in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    return clean_text(str(value))


def clamp_int(value: int | None, *, low: int = 0, high: int = MAX_INT32) -> int | None:
    if value is None:
        return None
    return min(max(int(value), low), high)
