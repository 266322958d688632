"""The ASGI entry point sends /v1/ through a Django handler without the site's middleware."""

import json

import pytest
from channels.testing import HttpCommunicator

from inference_app.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


async def _get(path: str, *, host: bytes = b"testserver", key: bytes | None = None):
    headers = [(b"host", host)]
    if key is not None:
        headers.append((b"authorization", b"Bearer " + key))
    response = await HttpCommunicator(application, "GET", path, headers=headers).get_response(
        timeout=10
    )
    response_headers = {k.decode().lower(): v.decode() for k, v in response["headers"]}
    return response["status"], response_headers, response["body"]


async def test_api_runs_without_site_middleware_and_answers_in_our_shape():
    status, headers, body = await _get("/v1/models", key=b"ys-nope")
    assert status == 401
    assert json.loads(body)["error"]["code"] == "invalid_api_key"
    # XFrameOptionsMiddleware (like sessions and CSRF) did not run for the API.
    assert "x-frame-options" not in headers


async def test_site_pages_still_get_the_middleware():
    status, headers, _ = await _get("/accounts/login/")
    assert status == 200
    assert headers["x-frame-options"] == "DENY"
    assert "csrftoken" in headers.get("set-cookie", "")


async def test_api_still_refuses_hosts_outside_allowed_hosts():
    status, _, _ = await _get("/v1/models", host=b"evil.example", key=b"ys-nope")
    assert status == 400
