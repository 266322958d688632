"""JSON in and out of the gateway: orjson, with the standard library where orjson says no.

orjson is several times faster than `json` both ways, and the API plane encodes and decodes
JSON on every request (the body, the engine's answer, every streamed chunk). It is stricter in
a few places the API has to keep answering as before: integers beyond 64 bits, lone surrogates
in strings, NaN and nesting past 1,024 levels. There it raises, and the standard library takes
the same input, so the behaviour (what is accepted, which error is given) is `json`'s.
"""

from __future__ import annotations

import json

import orjson


def dumps(value) -> bytes:
    """Compact UTF-8 JSON, as bytes."""
    try:
        return orjson.dumps(value)
    except TypeError:  # an int past 64 bits, a lone surrogate, a type orjson does not know
        # ASCII escapes: a lone surrogate has no UTF-8 form, "\\udc80" does.
        return json.dumps(value, separators=(",", ":")).encode()


def loads(raw: bytes | str):
    """Parse JSON an engine sent; raises ValueError (or RecursionError, UnicodeDecodeError) as
    json.loads. Not for callers' bodies: orjson reads an integer past 64 bits as a float, where
    the API must refuse it (gateway.requests uses json.loads)."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)
