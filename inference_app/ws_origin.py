"""The websocket handshake's Origin check: a page of this site (host and port), or a trusted one.

A browser sends the user's cookies with a websocket handshake to our host from any page, so the
Origin header is all that tells our own pages from another site's. Channels'
AllowedHostsOriginValidator compares only the Origin's host with ALLOWED_HOSTS: a page served
from another port of the same host (another app on 127.0.0.1:9999) could chat as the user. Here
the Origin must name the host and port the browser connected to (the Host header, itself one of
ALLOWED_HOSTS), or be one of CSRF_TRUSTED_ORIGINS, matched as Django's CSRF check matches them.
"""

from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host
from django.utils.http import is_same_domain

from inference_app.gateway.admission import scope_header

DEFAULT_PORTS = {"http": 80, "https": 443}


class SameOriginValidator:
    """ASGI middleware for websockets: the handshake is refused unless `origin_allowed`."""

    def __init__(self, application) -> None:
        self.application = application

    async def __call__(self, scope, receive, send):
        if origin_allowed(scope):
            return await self.application(scope, receive, send)
        return await WebsocketDenier()(scope, receive, send)


def origin_allowed(scope: dict) -> bool:
    origin = scope_header(scope, "origin")
    host = _request_host(scope)
    if not origin or not host:
        return False
    host_domain, host_port = split_domain_port(host)
    if not host_domain or not validate_host(host_domain, _allowed_hosts()):
        return False
    if _trusted(origin):
        return True
    parsed = _split_origin(origin)
    if parsed is None:
        return False
    scheme, domain, port = parsed
    if domain != host_domain:
        return False
    if host_port:
        return port == int(host_port)
    # No port in the Host: the browser used its scheme's default one, and which scheme is
    # unknown behind a proxy that ends TLS. Any explicit other port is another site.
    return port == DEFAULT_PORTS[scheme]


def _request_host(scope: dict) -> str | None:
    # As Django's request.get_host() reads it: X-Forwarded-Host only from a trusted proxy.
    if settings.USE_X_FORWARDED_HOST:
        forwarded = scope_header(scope, "x-forwarded-host")
        if forwarded:
            return forwarded
    return scope_header(scope, "host")


def _allowed_hosts() -> list[str]:
    # Django's own fallback while developing.
    if settings.DEBUG and not settings.ALLOWED_HOSTS:
        return [".localhost", "127.0.0.1", "[::1]"]
    return settings.ALLOWED_HOSTS


def _split_origin(origin: str) -> tuple[str, str, int] | None:
    """(scheme, domain, port) of an http(s) Origin, the port filled in; None when malformed."""
    try:
        parts = urlsplit(origin)
    except ValueError:  # an unclosed IPv6 bracket
        return None
    if parts.scheme not in DEFAULT_PORTS or parts.path or parts.query or parts.fragment:
        return None
    domain, port = split_domain_port(parts.netloc)  # "" for user info or a bad port
    if not domain:
        return None
    number = int(port) if port else DEFAULT_PORTS[parts.scheme]
    if not 0 < number < 65536:
        return None
    return parts.scheme, domain, number


def _trusted(origin: str) -> bool:
    """Whether CSRF_TRUSTED_ORIGINS names `origin`, exactly or by a "*." wildcard."""
    if origin in settings.CSRF_TRUSTED_ORIGINS:
        return True
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    for trusted in settings.CSRF_TRUSTED_ORIGINS:
        if "*" in trusted:
            pattern = urlsplit(trusted)
            if pattern.scheme == parts.scheme and is_same_domain(
                parts.netloc, pattern.netloc.lstrip("*")
            ):
                return True
    return False
