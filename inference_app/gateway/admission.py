"""The checks every caller passes before any work, in one place for the API and the websocket.

Each rule lives here once: the country block (the header a trusted load balancer sets) and the
request size limit. Who the caller is (key or session), their organization and team membership
and the project they use are resolved by gateway.callers, also shared by both paths.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings

from inference_app.gateway import errors


def scope_header(scope: dict, name: str) -> str | None:
    """The value of header `name` (any case) in an ASGI scope, or None."""
    wanted = name.lower().encode("latin-1")
    headers: Iterable[tuple[bytes, bytes]] = scope.get("headers", ())
    for key, value in headers:
        if key.lower() == wanted:
            return value.decode("latin-1")
    return None


def check_country(country_header_value: str | None) -> None:
    """403 unsupported_country_region_territory when the caller's country is blocked."""
    if not settings.BLOCKED_COUNTRIES or not country_header_value:
        return
    if country_header_value.strip().upper() in settings.BLOCKED_COUNTRIES:
        raise errors.unsupported_country()


def check_country_of_scope(scope: dict) -> None:
    check_country(scope_header(scope, settings.COUNTRY_HEADER))


def too_large(size_bytes: int) -> bool:
    """Does a body (or a websocket message) of this size pass MAX_REQUEST_BYTES?"""
    return size_bytes > settings.MAX_REQUEST_BYTES


def check_size(size_bytes: int) -> None:
    """413 request_too_large when a body (or a websocket message) passes MAX_REQUEST_BYTES."""
    if too_large(size_bytes):
        raise errors.request_too_large(settings.MAX_REQUEST_BYTES)
