"""What the gateway refuses itself, before any engine sees it: tools, tool_choice,
response_format, image URLs, and JSON that is valid but would break something further on
(nested too deeply, lone surrogates, numbers no engine can read)."""

import json

import httpx
import pytest

from inference_app.gateway import errors
from inference_app.gateway.requests import parse_chat_request, parse_json_body
from tests.inference_app.gateway_world import HELLO, TEXT_MODEL, VISION_MODEL, post_chat

TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
        "strict": True,
    },
}
SCHEMA_FORMAT = {
    "type": "json_schema",
    "json_schema": {
        "name": "answer",
        "schema": {"type": "object", "properties": {"a": {"type": "integer"}}},
        "strict": True,
    },
}


def body(**fields) -> dict:
    return {"model": TEXT_MODEL, "messages": HELLO, **fields}


def image_body(url: str) -> dict:
    content = [{"type": "image_url", "image_url": {"url": url}}]
    return {"model": VISION_MODEL, "messages": [{"role": "user", "content": content}]}


def refused(payload: dict) -> errors.GatewayError:
    with pytest.raises(errors.GatewayError) as caught:
        parse_chat_request(payload)
    error = caught.value
    assert error.status == 400 and error.code == "invalid_request_error", error
    json.dumps(error.body()).encode()  # the answer itself must be writable
    return error


# --- tools, tool_choice, response_format -------------------------------------------------
@pytest.mark.parametrize(
    "fields",
    [
        {"tools": [TOOL]},
        {"tools": [TOOL], "tool_choice": "auto"},
        {"tools": [TOOL], "tool_choice": "none"},
        {"tools": [TOOL], "tool_choice": "required"},
        {"tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
        {"tools": [{"type": "function", "function": {"name": "f"}}]},
        {"response_format": {"type": "text"}},
        {"response_format": {"type": "json_object"}},
        {"response_format": SCHEMA_FORMAT},
        {"response_format": {"type": "json_schema", "json_schema": {"name": "no-schema_1"}}},
    ],
    ids=repr,
)
def test_well_formed_tools_and_formats_are_accepted(fields):
    parse_chat_request(body(**fields))


def _tool(**function) -> dict:
    return {"type": "function", "function": {"name": "f", **function}}


BAD_FIELDS = {
    "tool-without-function": ({"tools": [{"type": "function"}]}, "tools.0.function"),
    "tool-of-another-type": (
        {"tools": [{"type": "retrieval", "function": {"name": "f"}}]},
        "tools.0.type",
    ),
    "tools-not-a-list": ({"tools": {"type": "function"}}, "tools"),
    "tools-empty": ({"tools": []}, "tools"),
    "tools-too-many": ({"tools": [_tool()] * 129}, "tools"),
    "function-without-name": (
        {"tools": [{"type": "function", "function": {"description": "x"}}]},
        "tools.0.function.name",
    ),
    "function-name-with-spaces": ({"tools": [_tool(name="get weather")]}, "tools.0.function.name"),
    "function-name-too-long": ({"tools": [_tool(name="f" * 65)]}, "tools.0.function.name"),
    "parameters-not-an-object": (
        {"tools": [_tool(parameters="city")]},
        "tools.0.function.parameters",
    ),
    "parameters-not-a-json-schema": (
        {"tools": [_tool(parameters={"type": "object", "properties": {"a": {"type": "strin"}}})]},
        "tools.0.function.parameters",
    ),
    "strict-not-a-bool": ({"tools": [_tool(strict="yes")]}, "tools.0.function.strict"),
    "tool-choice-unknown": ({"tools": [TOOL], "tool_choice": "sometimes"}, "tool_choice"),
    "tool-choice-without-function": (
        {"tools": [TOOL], "tool_choice": {"type": "function"}},
        "tool_choice.function",
    ),
    "tool-choice-names-no-tool": (
        {"tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "other"}}},
        "tool_choice",
    ),
    "tool-choice-without-tools": ({"tool_choice": "auto"}, "tool_choice"),
    "response-format-a-string": ({"response_format": "json"}, "response_format"),
    "response-format-unknown-type": ({"response_format": {"type": "xml"}}, "response_format.type"),
    "response-format-without-type": ({"response_format": {}}, "response_format.type"),
    "json-schema-missing": ({"response_format": {"type": "json_schema"}}, "response_format"),
    "json-schema-without-name": (
        {"response_format": {"type": "json_schema", "json_schema": {"schema": {}}}},
        "response_format.json_schema.name",
    ),
    "json-schema-not-a-schema": (
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "a", "schema": {"type": "foo"}},
            }
        },
        "response_format.json_schema.schema",
    ),
    "json-schema-schema-not-an-object": (
        {"response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": 1}}},
        "response_format.json_schema.schema",
    ),
}


@pytest.mark.parametrize("case", list(BAD_FIELDS))
def test_malformed_tools_and_formats_name_the_parameter(case):
    fields, param = BAD_FIELDS[case]
    error = refused(body(**fields))
    assert (error.param or "").startswith(param), error


async def test_a_tool_without_function_never_reaches_the_engine(world, fake_engine):
    # llama.cpp answers 500 to this one; it must be our 400, not the engine's problem.
    response = await post_chat(world, body(tools=[{"type": "function"}]))
    assert response.status_code == 400, response.content
    assert response.json()["error"]["param"] == "tools.0.function"
    assert fake_engine.requests == []


async def test_a_valid_tool_call_request_passes_through_untouched(world, fake_engine):
    fields = {"tools": [TOOL], "tool_choice": "auto", "response_format": SCHEMA_FORMAT}
    response = await post_chat(world, body(**fields))
    assert response.status_code == 200, response.content
    [(_, sent)] = fake_engine.requests
    assert {key: sent[key] for key in fields} == fields


# --- image URLs ----------------------------------------------------------------------------
PIXEL = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgAAIAAAUAAeIhvDMAAAAASUVORK5CYII="


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/cat.png",
        "http://example.com/cat.png?size=large",
        "HTTPS://EXAMPLE.COM/CAT.PNG",
        "http://8.8.8.8/cat.png",
        "https://[2606:4700::1111]/cat.png",
        PIXEL,
        "data:image/jpeg;base64,/9j/4AAQSkZJRg==",
    ],
)
def test_image_urls_that_are_accepted(url):
    parse_chat_request(image_body(url))


IMAGE_PARAM = "messages.0.content.0.image_url.url"
REFUSED_URLS = [
    "file:///etc/passwd",
    "gopher://example.com:70/_x",
    "ftp://example.com/cat.png",
    "javascript:alert(1)",
    "//example.com/cat.png",
    "example.com/cat.png",
    "http:///cat.png",
    "http://169.254.169.254/latest/meta-data/",
    "http://127.0.0.1:8000/admin/",
    "http://localhost/cat.png",
    "http://api.localhost/cat.png",
    "http://10.0.0.5/cat.png",
    "http://192.168.1.1/cat.png",
    "http://100.64.0.1/cat.png",  # shared address space (carrier NAT)
    "http://0.0.0.0/cat.png",
    "http://224.0.0.1/cat.png",
    "http://[::1]/cat.png",
    "http://[fe80::1]/cat.png",
    "http://[::ffff:169.254.169.254]/",
    "http://2852039166/",  # 169.254.169.254 as one decimal number
    "http://0xa9fea9fe/",  # ... in hexadecimal
    "http://0251.0376.0251.0376/",  # ... in octal
    "http://127.1/",
    "http://169.254.169.254./",
    "data:text/plain;base64,aGVsbG8=",
    "data:image/png,raw-bytes",
    "data:image/png;base64,",
]


@pytest.mark.parametrize("url", REFUSED_URLS)
def test_image_urls_that_are_refused(url):
    error = refused(image_body(url))
    assert error.param == IMAGE_PARAM, error


def test_a_data_url_over_the_size_limit_is_refused(settings):
    settings.IMAGE_DATA_URL_MAX_BYTES = 30
    at_limit = "data:image/png;base64," + "A" * 40  # 30 bytes
    parse_chat_request(image_body(at_limit))
    error = refused(image_body("data:image/png;base64," + "A" * 44))  # 33 bytes
    assert error.param == IMAGE_PARAM and "30 bytes" in error.message


def test_an_operator_may_allow_private_image_addresses(settings):
    settings.ALLOW_PRIVATE_IMAGE_URLS = True
    parse_chat_request(image_body("http://10.0.0.5/cat.png"))
    parse_chat_request(image_body("http://localhost:9000/cat.png"))
    # The scheme is still checked.
    assert refused(image_body("file:///etc/passwd")).param == IMAGE_PARAM


async def test_a_metadata_address_never_reaches_the_engine(world, fake_engine):
    response = await post_chat(world, image_body("http://169.254.169.254/latest/meta-data/"))
    assert response.status_code == 400, response.content
    assert response.json()["error"]["param"] == IMAGE_PARAM
    assert fake_engine.requests == []


# --- JSON that parses but must not go further -----------------------------------------------
def test_json_nested_thousands_deep_is_400():
    for raw in (b"[" * 5000 + b"]" * 5000, b'{"a":' * 5000 + b"1" + b"}" * 5000):
        with pytest.raises(errors.GatewayError) as caught:
            parse_chat_request(parse_json_body(raw))
        assert caught.value.status == 400


def _nested(levels: int) -> object:
    value: object = "deep"
    for _ in range(levels):
        value = {"x": value}
    return value


def test_json_nested_past_the_limit_is_400_and_says_so():
    parse_chat_request(body(metadata=_nested(60)))  # a deep but reasonable JSON schema
    error = refused(body(metadata=_nested(70)))
    assert "nested too deeply" in error.message
    assert (error.param or "").startswith("metadata.x.x")


@pytest.mark.parametrize(
    "raw, param",
    [
        (b'{"model": "m", "messages": [{"role": "user", "content": "a\\ud800b"}]}', "messages"),
        (b'{"model": "\\udfff", "messages": [{"role": "user", "content": "hi"}]}', "model"),
        (b'{"model": "m", "messages": [{"role": "user", "content": "hi"}], "\\ud800": 1}', None),
        (b'{"model": "m", "messages": [], "user": "\\ud83d"}', "user"),
    ],
    ids=["content", "model", "key", "extra"],
)
def test_lone_surrogates_are_400(raw, param):
    error = refused(parse_json_body(raw))
    assert "surrogate" in error.message
    if param:
        assert (error.param or "").startswith(param)


def test_a_surrogate_pair_is_a_character_like_any_other():
    request = parse_chat_request(
        parse_json_body(
            b'{"model": "m", "messages": [{"role": "user", "content": "\\ud83d\\ude00"}]}'
        )
    )
    assert request.messages[0].content == "\N{GRINNING FACE}"


@pytest.mark.parametrize(
    "raw_field, param",
    [
        (b'"max_tokens": 1e309', "max_tokens"),
        (b'"max_tokens": 100000000000000000000000000000', "max_tokens"),
        (b'"temperature": NaN', "temperature"),
        (b'"temperature": Infinity', "temperature"),
        (b'"top_p": -Infinity', "top_p"),
        (b'"seed": 100000000000000000000000000000', "seed"),
        (b'"top_k": 1e309', "top_k"),
        (b'"min_p": NaN', "min_p"),
        (b'"logit_bias": {"42": 123456789012345678901234567890}', "logit_bias.42"),
    ],
    ids=lambda value: value.decode() if isinstance(value, bytes) else value,
)
def test_numbers_no_engine_can_read_are_400(raw_field, param):
    raw = b'{"model": "m", "messages": [{"role": "user", "content": "hi"}], ' + raw_field + b"}"
    error = refused(parse_json_body(raw))
    assert error.param == param, error


@pytest.mark.parametrize(
    "raw",
    [
        b'{"model": "\\ud800", "messages": [{"role": "user", "content": "hi"}]}',
        b'{"model": "'
        + TEXT_MODEL.encode()
        + b'", "messages": [{"role": "user", "content": "hi"}],'
        b' "temperature": NaN}',
        b'{"model": "'
        + TEXT_MODEL.encode()
        + b'", "messages": [{"role": "user", "content": "hi"}],'
        b' "top_k": 1e309}',
        b"[" * 3000 + b"]" * 3000,
    ],
    ids=["surrogate-model", "nan", "infinite-extra", "deep"],
)
async def test_through_the_api_these_are_400_not_500(world, fake_engine, raw):
    response = await post_chat(world, raw=raw)
    assert response.status_code == 400, response.content
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    assert fake_engine.requests == []


async def test_a_lone_surrogate_in_a_message_never_reaches_the_engine(world, fake_engine):
    # Where it broke: the engine refused the text and quoted it in its error message (as
    # llama.cpp's JSON parser does); the gateway passed the message on and could not encode
    # its own answer, a 500 outside OpenAI's shape.
    from inference_app.gateway import engine_client

    async def quoting_engine(request: httpx.Request) -> httpx.Response:
        content = json.loads(request.content)["messages"][0]["content"]
        error = {"error": {"message": f"invalid string: '{content}'"}}
        return httpx.Response(400, content=json.dumps(error).encode())

    engine_client.install_transport(httpx.MockTransport(quoting_engine))
    raw = (
        b'{"model": "'
        + TEXT_MODEL.encode()
        + b'", "messages": [{"role": "user", "content": "a\\ud800b"}]}'
    )
    response = await post_chat(world, raw=raw)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert "surrogate" in error["message"] and error["param"] == "messages.0.content"


def test_an_engine_error_message_quoting_a_surrogate_is_made_encodable():
    from inference_app.gateway.engine_client import error_message_of

    message = error_message_of(json.loads(b'{"error": {"message": "bad: \\udc80"}}'))
    assert message.encode("utf-8") == b"bad: ?"
