"""The ASGI entry point sends /v1/ through a Django handler without the site's middleware."""

import json

import pytest
from channels.testing import HttpCommunicator

from inference_app.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


def _headers(response) -> dict[str, str]:
    return {k.decode().lower(): v.decode() for k, v in response["headers"]}


async def test_api_runs_without_site_middleware_and_answers_in_our_shape():
    response = await HttpCommunicator(
        application,
        "GET",
        "/v1/models",
        headers=[(b"host", b"testserver"), (b"authorization", b"Bearer ys-nope")],
    ).get_response()
    assert response["status"] == 401
    assert json.loads(response["body"])["error"]["code"] == "invalid_api_key"
    # XFrameOptionsMiddleware (like sessions and CSRF) did not run for the API.
    assert "x-frame-options" not in _headers(response)


async def test_site_pages_still_get_the_middleware():
    response = await HttpCommunicator(
        application, "GET", "/accounts/login/", headers=[(b"host", b"testserver")]
    ).get_response()
    assert response["status"] == 200
    headers = _headers(response)
    assert headers["x-frame-options"] == "DENY"
    assert "csrftoken" in headers.get("set-cookie", "")


async def test_api_still_refuses_hosts_outside_allowed_hosts():
    response = await HttpCommunicator(
        application,
        "GET",
        "/v1/models",
        headers=[(b"host", b"evil.example"), (b"authorization", b"Bearer ys-nope")],
    ).get_response()
    assert response["status"] == 400
