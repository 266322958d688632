"""The socket applies the API's admission rules: the country block, the size limit."""

import json

import pytest

from billing.models import UsageRecord
from inference_app.gateway import settlement
from tests.playground.socket_client import (
    assert_still_usable,
    connect,
    fast_deployment_create,
    next_event,
    run_text,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
async def settlements_drained():
    yield
    await settlement.drain()


@pytest.fixture
def deployment(fake_engine):
    fast_deployment_create(fake_engine)


@pytest.fixture
def blocked(settings):
    settings.BLOCKED_COUNTRIES = ["KP"]
    settings.COUNTRY_HEADER = "CF-IPCountry"


@pytest.mark.parametrize("country", [b"KP", b"kp", b" KP "])
async def test_a_blocked_country_gets_the_apis_403_in_each_pane(
    member, deployment, blocked, country
):
    user, _ = member
    ws = await connect(user, (b"cf-ipcountry", country))
    for pane in ("a", "b"):
        await ws.send_to(text_data=run_text(pane=json.dumps(pane)))
        event = await next_event(ws)
        assert event["type"] == "error" and event["pane"] == pane
        assert event["status"] == 403
        assert event["code"] == "unsupported_country_region_territory"
        assert event["message"] == "Country, region, or territory not supported"
    await settlement.drain()
    assert await UsageRecord.objects.acount() == 0
    await ws.disconnect()


@pytest.mark.parametrize("headers", [[(b"cf-ipcountry", b"FR")], []])
async def test_other_countries_and_no_country_header_run(member, deployment, blocked, headers):
    user, _ = member
    ws = await connect(user, *headers)
    await assert_still_usable(ws)
    await ws.disconnect()


async def test_the_size_limit_is_the_apis_counted_in_bytes(member, deployment, settings):
    user, _ = member
    settings.MAX_REQUEST_BYTES = 2000
    ws = await connect(user)
    # 700 characters, 2,100 bytes of UTF-8: under the limit in characters, over it in bytes.
    text = run_text(
        messages=json.dumps([{"role": "user", "content": "€" * 700}], ensure_ascii=False)
    )
    assert len(text) < 2000 < len(text.encode())
    await ws.send_to(text_data=text)
    event = await next_event(ws)
    assert event["type"] == "error" and event["pane"] == "p"
    assert event["status"] == 413 and event["code"] == "request_too_large"
    await assert_still_usable(ws)
    await ws.disconnect()
