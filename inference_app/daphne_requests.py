"""daphne's HTTP requests without Twisted's own parse of form bodies.

Twisted's `Request` parses multipart and URL-encoded bodies into `request.args` before daphne
hands the request to the application, and answers a malformed multipart body itself with a
bare 400 (no body, no content type): a /v1/ caller would get an error outside OpenAI's shape,
from code that is not ours. daphne never reads `request.args` (the application parses the body),
so the parse is switched off with Twisted's own constructor option.
"""


def install() -> None:
    """Make daphne build its requests with parsePOSTFormSubmission=False (under daphne only)."""
    try:
        from daphne import http_protocol
    except ImportError:  # another ASGI server: nothing to do
        return
    if getattr(http_protocol.WebRequest, "_yardstick_no_form_parse", False):
        return

    class WebRequest(http_protocol.WebRequest):
        _yardstick_no_form_parse = True

        def __init__(self, *args, **kwargs):
            kwargs.setdefault("parsePOSTFormSubmission", False)
            super().__init__(*args, **kwargs)

    # daphne's factory looks the class up in its module for every new connection.
    http_protocol.WebRequest = WebRequest
