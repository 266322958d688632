"""The websocket handshake's Origin: this site's page (host AND port) or a trusted origin.

A browser sends the user's cookies with a handshake to our host from any page, so the Origin
is all that tells our pages from another site's; another port of the same host is another
site (another app on 127.0.0.1:9999 must not chat as the user).
"""

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from inference_app.asgi import application
from inference_app.ws_origin import origin_allowed
from tests.playground.socket_client import _session_cookie


def scope(origin: str | bytes | None, host: str | bytes | None, **extra: str) -> dict:
    headers = [(b"x-other", b"1")]
    for name, value in (("origin", origin), ("host", host), *extra.items()):
        if value is not None:
            raw = value if isinstance(value, bytes) else value.encode("latin-1")
            headers.append((name.replace("_", "-").encode(), raw))
    return {"type": "websocket", "path": "/ws/playground/", "headers": headers}


@pytest.fixture(autouse=True)
def sites(settings):
    settings.ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]", "yardstick.example", ".corp.test"]
    settings.CSRF_TRUSTED_ORIGINS = []
    settings.USE_X_FORWARDED_HOST = False


@pytest.mark.parametrize(
    ("origin", "host"),
    [
        ("http://127.0.0.1:8000", "127.0.0.1:8000"),
        ("http://LOCALHOST:8000", "localhost:8000"),
        ("http://[::1]:8000", "[::1]:8000"),
        ("https://yardstick.example", "yardstick.example"),
        ("https://yardstick.example:443", "yardstick.example"),
        ("https://yardstick.example", "yardstick.example:443"),
        # Behind a TLS proxy the Host has no port and the scheme is unknown: either default.
        ("http://yardstick.example", "yardstick.example"),
        ("https://a.corp.test", "a.corp.test"),
        ("https://yardstick.example.", "yardstick.example"),
    ],
)
def test_a_page_of_this_site_is_accepted(origin, host):
    assert origin_allowed(scope(origin, host))


@pytest.mark.parametrize(
    ("origin", "host"),
    [
        ("http://127.0.0.1:9999", "127.0.0.1:8000"),  # another port of the right host
        ("http://127.0.0.1", "127.0.0.1:8000"),
        ("http://localhost:8000", "127.0.0.1:8000"),  # another host, both allowed
        ("https://yardstick.example:8443", "yardstick.example"),
        ("https://yardstick.example", "yardstick.example:8443"),
        ("https://b.corp.test", "a.corp.test"),  # both allowed by one pattern, still two sites
        ("http://evil.example:8000", "evil.example:8000"),  # a host not ours (DNS rebinding)
        ("http://evil.example", "yardstick.example"),
        # Malformed or missing parts: refused, never an error.
        (None, "127.0.0.1:8000"),
        ("null", "127.0.0.1:8000"),
        ("", "127.0.0.1:8000"),
        ("http://127.0.0.1:99999", "127.0.0.1:99999"),
        ("http://127.0.0.1:abc", "127.0.0.1:8000"),
        ("http://user@127.0.0.1:8000", "127.0.0.1:8000"),
        ("127.0.0.1:8000", "127.0.0.1:8000"),
        ("ftp://127.0.0.1:8000", "127.0.0.1:8000"),
        ("http://[::1", "[::1]:8000"),
        (b"http://\xff:8000", b"\xff:8000"),
        ("http://127.0.0.1:8000", None),
        ("http://127.0.0.1:8000", "127.0.0.1:abc"),
        ("http://127.0.0.1:8000", ""),
    ],
)
def test_any_other_origin_is_refused(origin, host):
    assert not origin_allowed(scope(origin, host))


def test_trusted_origins_are_accepted_with_their_scheme_and_port(settings):
    settings.ALLOWED_HOSTS = ["api.example.com"]
    settings.CSRF_TRUSTED_ORIGINS = ["https://app.example.com", "https://*.tools.example.com"]
    host = "api.example.com"
    assert origin_allowed(scope("https://app.example.com", host))
    assert origin_allowed(scope("https://x.tools.example.com", host))
    assert not origin_allowed(scope("https://app.example.com:444", host))
    assert not origin_allowed(scope("http://app.example.com", host))
    assert not origin_allowed(scope("http://x.tools.example.com", host))
    assert not origin_allowed(scope("https://x.tools.example.com.evil.test", host))
    # The Host must still be one of ours.
    assert not origin_allowed(scope("https://app.example.com", "evil.test"))


def test_the_forwarded_host_counts_only_when_the_proxy_is_trusted_to_set_it(settings):
    proxied = scope(
        "https://yardstick.example", "127.0.0.1:8000", x_forwarded_host="yardstick.example"
    )
    assert not origin_allowed(proxied)
    settings.USE_X_FORWARDED_HOST = True
    assert origin_allowed(proxied)


def test_debug_without_allowed_hosts_allows_localhost_like_django(settings):
    settings.DEBUG, settings.ALLOWED_HOSTS = True, []
    assert origin_allowed(scope("http://localhost:8000", "localhost:8000"))
    assert not origin_allowed(scope("http://evil.example", "evil.example"))


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("origin", "accepted"),
    [(b"http://127.0.0.1:8000", True), (b"http://127.0.0.1:9999", False)],
)
async def test_the_application_refuses_a_socket_from_another_port(member, origin, accepted):
    cookie = await sync_to_async(_session_cookie)(member[0])
    communicator = WebsocketCommunicator(
        application,
        "/ws/playground/",
        headers=[(b"origin", origin), (b"host", b"127.0.0.1:8000"), (b"cookie", cookie)],
    )
    connected, _ = await communicator.connect(timeout=5)
    assert connected is accepted
    await communicator.disconnect()
