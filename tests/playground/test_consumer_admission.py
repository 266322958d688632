"""What the Playground/Compare socket refuses before a run starts, and how.

Every bad run message is an `error` event, never a crash: a hostile or broken client gets
`invalid_request_error` (status 400) for the pane it named, and the socket keeps working (the
next good run on it completes). The API's admission rules apply too: the country block and
the size limit.
"""

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
async def ws(member, deployment):
    communicator = await connect(member[0])
    yield communicator
    await communicator.disconnect()


async def assert_refused(ws, text: str, *, pane: str | None = "p") -> dict:
    await ws.send_to(text_data=text)
    event = await next_event(ws)
    assert event["type"] == "error", event
    assert event["code"] == "invalid_request_error" and event["status"] == 400, event
    assert event["pane"] == pane and event["message"]
    await assert_still_usable(ws)
    return event


NUMBERS = ["1e309", "-1e309", "NaN", "Infinity", "-Infinity", "1" + "0" * 400, "true", "[]", "{}"]


@pytest.mark.parametrize("value", [*NUMBERS, '"abc"', '"1e309"', '"nan"', '"inf"', "1.5"])
async def test_a_max_tokens_that_is_not_a_count(ws, value):
    await assert_refused(ws, run_text(params=f'{{"max_tokens": {value}}}'))


@pytest.mark.parametrize("value", [*NUMBERS, '"abc"', '"nan"', '"inf"', '"-1e999"'])
async def test_a_temperature_that_is_not_a_finite_number(ws, value):
    await assert_refused(ws, run_text(params=f'{{"temperature": {value}}}'))


@pytest.mark.parametrize("value", ["1e309", "NaN", "1" + "0" * 30, "1.5", '"x"'])
async def test_a_seed_that_is_not_a_64_bit_integer(ws, value):
    await assert_refused(ws, run_text(params=f'{{"seed": {value}}}'))


@pytest.mark.parametrize("params", ['"x"', "[]", "5", '{"stop": ["\\ud800"]}'])
async def test_params_that_are_not_an_object_of_params(ws, params):
    await assert_refused(ws, run_text(params=params))


@pytest.mark.parametrize(
    "model", ['"\\ud800"', '"a\\udfffb"', "5", "null", "[]", "{}", '""', "true"]
)
async def test_a_model_that_is_not_a_model_id(ws, model):
    await assert_refused(ws, run_text(model=model))
    await settlement.drain()
    assert await UsageRecord.objects.acount() == 1  # the good run only


@pytest.mark.parametrize(
    "messages",
    [
        '"Hello"',
        "{}",
        "null",
        "[]",
        "[1]",
        '[{"role": "user"}]',
        '[{"role": "user", "content": 5}]',
        '[{"role": "root", "content": "x"}]',
        '[{"role": "user", "content": "\\ud800"}]',
        '[{"role": "user", "content": [1]}]',
        '[{"role": "user", "content": [{"type": "text", "text": 5}]}]',
        '[{"role": "user", "content": [{"type": "text", "text": "\\udc00"}]}]',
        '[{"role": "user", "content": [{"type": "video", "url": "x"}]}]',
        '[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}]}]',
        # Nested past the gateway's depth limit, yet well within what the parser reads.
        '[{"role": "user", "content": [{"type": "text", "text": "x", "deep": '
        + "[" * 200
        + "]" * 200
        + "}]}]",
    ],
)
async def test_messages_that_are_not_a_list_of_messages(ws, messages):
    await assert_refused(ws, run_text(messages=messages))


@pytest.mark.parametrize("pane", ["5", "{}", "[]", "true", '"' + "p" * 1000 + '"'])
async def test_a_pane_that_is_not_a_short_name(ws, pane):
    await assert_refused(ws, run_text(pane=pane), pane=None)


async def test_json_nested_a_thousand_levels_deep(ws):
    deep = "[" * 1000 + "]" * 1000
    await assert_refused(ws, run_text(params=deep), pane=None)
    # Anywhere in the message: the parser itself gives up before any field is read.
    await assert_refused(ws, "[" * 100_000 + "]" * 100_000, pane=None)


@pytest.mark.parametrize(
    "text",
    ["not json", " ", "[]", "5", '"run"', "null", '{"type": 5}', '{"type": "explode"}', "{}"],
)
async def test_messages_that_are_not_commands(ws, text):
    await assert_refused(ws, text, pane=None)


async def test_a_binary_frame(ws):
    await ws.send_to(bytes_data=b"\x00\xff")
    event = await next_event(ws)
    assert event["type"] == "error" and event["status"] == 400
    assert event["code"] == "invalid_request_error"
    await assert_still_usable(ws)


async def test_a_run_id_is_echoed_only_when_it_is_a_name(ws):
    text = run_text().replace('"run": "r1"', '"run": {"a": [1, 2]}')
    await ws.send_to(text_data=text)
    event = await next_event(ws)
    assert event["type"] == "error" and event["status"] == 400 and event["pane"] == "p"
    await assert_still_usable(ws)


# --- the API's admission rules ---


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
