"""W3C Trace Context: the `traceparent` header (https://www.w3.org/TR/trace-context/)."""

from __future__ import annotations

import re

from traces.reports import TraceContext

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


def traceparent_parse(value: str | None) -> TraceContext | None:
    """The caller's trace and span, or None when the header is absent or invalid (the spec:
    ignore it and start a new trace)."""
    if not value:
        return None
    match = _TRACEPARENT.match(value.strip())
    if match is None:
        return None
    version, trace_id, span_id, _flags, rest = match.groups()
    if version == "ff" or trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    if version == "00" and rest:
        return None  # version 00 has exactly four fields
    return TraceContext(trace_id=trace_id, parent_span_id=span_id)


def traceparent_format(*, trace_id: str, span_id: str) -> str:
    """Our span's traceparent, sent back with the response (sampled)."""
    return f"00-{trace_id}-{span_id}-01"
