"""daphne's HTTP requests, adjusted for the API: no form parsing, and oversized bodies refused
as they arrive.

Twisted's `Request` parses multipart and URL-encoded bodies into `request.args` before daphne
hands the request to the application, and answers a malformed multipart body itself with a
bare 400 (no body, no content type): a /v1/ caller would get an error outside OpenAI's shape,
from code that is not ours. daphne never reads `request.args` (the application parses the body),
so the parse is switched off with Twisted's own constructor option.

daphne calls the application only once the whole body is in: Twisted spools it to a temporary
file, and daphne then puts all of it on the application's queue at once (docs/request-size.md:
20 clients sending 200 MB each took daphne to 1.6-3.1 GB). For the API's paths (/v1/, /otel/)
the request refuses an oversized body itself, before any of that: a Content-Length over
MAX_REQUEST_BYTES as soon as the headers are in, a chunked body as soon as it passes the limit.
The answer is the API plane's own 413 (the API's error shape, `connection: close`), and the
connection is closed, so the rest is never received.
"""

from django.conf import settings

_API_PREFIXES = (b"/v1/", b"/otel/")


def install() -> None:
    """Make daphne build its requests with the class below (under daphne only)."""
    try:
        from daphne import http_protocol
    except ImportError:  # another ASGI server: nothing to do
        return
    if getattr(http_protocol.WebRequest, "_yardstick_request", False):
        return

    class WebRequest(http_protocol.WebRequest):
        _yardstick_request = True
        _yardstick_refused = False
        _yardstick_limited = False
        _yardstick_received = 0

        def __init__(self, *args, **kwargs):
            kwargs.setdefault("parsePOSTFormSubmission", False)
            super().__init__(*args, **kwargs)

        def gotLength(self, length):
            # Called once the headers are in; the request line is already parsed.
            path = getattr(self.channel, "_path", b"") or b""
            self._yardstick_limited = path.startswith(_API_PREFIXES)
            if self._yardstick_limited and length is not None and _too_large(length):
                self._yardstick_refuse()
                return
            super().gotLength(length)

        def handleContentChunk(self, data):
            if self._yardstick_refused:
                return
            if self._yardstick_limited:
                self._yardstick_received += len(data)
                if _too_large(self._yardstick_received):
                    self._yardstick_refuse()
                    return
            super().handleContentChunk(data)

        def requestReceived(self, command, path, version):
            if self._yardstick_refused:
                return  # answered already: the application never sees it
            super().requestReceived(command, path, version)

        def _yardstick_refuse(self):
            self._yardstick_refused = True
            self.channel.transport.write(_too_large_response())
            self.channel.loseConnection()

    # daphne's factory looks the class up in its module for every new connection.
    http_protocol.WebRequest = WebRequest


def _too_large(size: int) -> bool:
    return size > settings.MAX_REQUEST_BYTES


def _too_large_response() -> bytes:
    from inference_app.gateway import errors, jsonio

    body = jsonio.dumps(errors.request_too_large(settings.MAX_REQUEST_BYTES).body())
    return (
        b"HTTP/1.1 413 Request Entity Too Large\r\n"
        b"Content-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n"
        b"Connection: close\r\n\r\n" + body
    )
