"""The chat-completions request as the gateway validates it (OpenAI's format).

Validation is strict about types (a string is not a number) and lenient about unknown fields:
extra top-level fields and extra message fields are passed through to the engine untouched,
because engines grow parameters faster than this schema does.

What the gateway checks itself is what engines answer badly: a malformed `tools` entry or an
invalid JSON Schema makes llama.cpp answer 500, which must be the caller's 400 instead. Image
URLs are limited to what an engine should fetch. And any JSON value, declared or passed
through, must be one every engine can read back: not nested past MAX_JSON_DEPTH, no lone
UTF-16 surrogates, numbers finite and within 64 bits.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import math
import re
import socket
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import jsonschema_rs
from django.conf import settings
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import PydanticCustomError

from inference_app.gateway import errors

# Deeper than any real request (a JSON Schema for structured output is a few levels), and far
# below the recursion limits of the parsers and encoders the body goes through.
MAX_JSON_DEPTH = 64
# Engines (C++, Rust) read JSON integers as 64-bit; the widest range either signedness allows.
_MIN_INT = -(2**63)
_MAX_INT = 2**64 - 1


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")


# --- JSON Schemas (tool parameters, response formats) ------------------------------------------


@functools.cache
def _meta_schema_validator() -> jsonschema_rs.Validator:
    # The 2020-12 meta-schema, bundled with the library (never fetched). jsonschema_rs rather
    # than the pure-Python jsonschema: its check of a 10 kB schema takes 0.1 ms instead of
    # 28 ms, and this runs on the event loop, where a slow check would stall every request.
    # Validating against the meta-schema never dereferences the schema's own `$schema` or
    # `$ref` URLs (the library's `meta.validate` would fetch an unknown `$schema`).
    return jsonschema_rs.Draft202012Validator(
        {"$ref": "https://json-schema.org/draft/2020-12/schema"}
    )


def _check_json_schema(schema: dict[str, Any]) -> dict[str, Any]:
    try:
        _meta_schema_validator().validate(schema)
    except jsonschema_rs.ValidationError as exc:
        where = "/".join(str(part) for part in exc.instance_path)
        problem = exc.message.splitlines()[0] if exc.message else "invalid"
        raise PydanticCustomError(
            "json_schema_invalid",
            "not a valid JSON Schema: {problem}{where}",
            {"problem": problem, "where": f" (at '{where}')" if where else ""},
        ) from None
    return schema


JsonSchema = Annotated[dict[str, Any], AfterValidator(_check_json_schema)]
# OpenAI's rule for function and schema names.
Name = Annotated[str, Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")]


class FunctionDefinition(_Strict):
    name: Name
    description: str | None = None
    parameters: JsonSchema | None = None
    strict: bool | None = None


class Tool(_Strict):
    type: Literal["function"]
    function: FunctionDefinition


class FunctionName(_Strict):
    name: str


class NamedToolChoice(_Strict):
    type: Literal["function"]
    function: FunctionName


class TextFormat(_Strict):
    type: Literal["text"]


class JsonObjectFormat(_Strict):
    type: Literal["json_object"]


class JsonSchemaSpec(_Strict):
    name: Name
    description: str | None = None
    # Aliased: `schema` is the name of a BaseModel method.
    json_schema: JsonSchema | None = Field(default=None, alias="schema")
    strict: bool | None = None


class JsonSchemaFormat(_Strict):
    type: Literal["json_schema"]
    json_schema: JsonSchemaSpec


ResponseFormat = Annotated[
    TextFormat | JsonObjectFormat | JsonSchemaFormat, Field(discriminator="type")
]


# --- image URLs ----------------------------------------------------------------------------------

_DATA_IMAGE_PREFIX = re.compile(r"data:image/[\w.+-]+(?:;[\w.+-]+=[\w.+-]+)*;base64,", re.I)


def _url_refused(problem: str) -> PydanticCustomError:
    return PydanticCustomError("image_url_refused", problem)


def _check_image_url(url: str) -> str:
    scheme = url.partition(":")[0].lower() if ":" in url else ""
    if scheme == "data":
        _check_data_url(url)
    elif scheme in ("http", "https"):
        _check_image_host(url)
    else:
        raise _url_refused("an image URL must be an https, http or data: URL")
    return url


def _check_data_url(url: str) -> None:
    prefix = _DATA_IMAGE_PREFIX.match(url)
    if prefix is None:
        raise _url_refused("a data URL must read data:image/<type>;base64,<data>")
    # The size from the length alone: decoding a few MB here would stall the event loop, and
    # the engine decodes the image anyway (a corrupt one is its 400).
    encoded = len(url) - prefix.end()
    size = encoded * 3 // 4 - url.count("=", len(url) - 2)
    if size <= 0:
        raise _url_refused("the data URL holds no image")
    limit = settings.IMAGE_DATA_URL_MAX_BYTES
    if size > limit:
        raise _url_refused(f"the image is larger than the limit of {limit} bytes")


def _check_image_host(url: str) -> None:
    try:
        host = urlsplit(url).hostname
    except ValueError:  # a malformed [IPv6] literal or port
        host = None
    if not host:
        raise _url_refused("the image URL has no host")
    if settings.ALLOW_PRIVATE_IMAGE_URLS:
        return
    # Only the literal host is judged: resolving names here would put DNS on every request's
    # path. A name that resolves to a private address is for the engine's network to stop.
    host = host.rstrip(".")
    address = _literal_address(host)
    if (
        host == "localhost"
        or host.endswith(".localhost")
        or (address is not None and not _is_public(address))
    ):
        raise _url_refused(
            "the image URL points at a private, loopback, link-local or reserved address"
        )


def _literal_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    # The forms the C resolver also reads as IPv4 without DNS: "2852039166", "0xa9fea9fe",
    # "0251.0376.0251.0376", "127.1".
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if address.is_multicast or not address.is_global:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        # An IPv4 address carried inside an IPv6 one reaches that IPv4 host.
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return _is_public(embedded)
    return True


_NAT64 = ipaddress.ip_network("64:ff9b::/96")


# --- the request ---------------------------------------------------------------------------------


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class ImageUrl(_Strict):
    url: Annotated[str, Field(min_length=1), AfterValidator(_check_image_url)]
    detail: Literal["auto", "low", "high"] | None = None


class ImageUrlPart(_Strict):
    type: Literal["image_url"]
    image_url: ImageUrl


ContentPart = Annotated[TextPart | ImageUrlPart, Field(discriminator="type")]


class Message(_Strict):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    # Assistant turns that only call tools carry no content.
    content: str | list[ContentPart] | None = None
    name: str | None = None


class StreamOptions(_Strict):
    include_usage: bool = False


class ChatRequest(_Strict):
    model: Annotated[str, Field(min_length=1)]
    messages: Annotated[list[Message], Field(min_length=1)]
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    stop: str | Annotated[list[str], Field(max_length=4)] | None = None
    seed: int | None = None
    n: Annotated[int, Field(ge=1, le=16)] | None = None
    presence_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    frequency_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    response_format: ResponseFormat | None = None
    # OpenAI's limits: at least one tool when the field is given, at most 128.
    tools: Annotated[list[Tool], Field(min_length=1, max_length=128)] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    user: str | None = None

    @property
    def requested_max_tokens(self) -> int | None:
        """The completion cap the caller asked for (max_completion_tokens wins, as at OpenAI)."""
        return self.max_completion_tokens or self.max_tokens

    @property
    def include_usage(self) -> bool:
        return bool(self.stream and self.stream_options and self.stream_options.include_usage)

    @property
    def has_images(self) -> bool:
        return any(
            isinstance(part, ImageUrlPart)
            for message in self.messages
            if isinstance(message.content, list)
            for part in message.content
        )


def parse_json_body(raw: bytes) -> dict:
    """The request body as a JSON object, or a 400."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        # RecursionError: arrays or objects nested some thousand levels deep.
        raise errors.invalid_request(
            "We could not parse the JSON body of your request. (HINT: This likely means you "
            "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload.)"
        ) from None
    if not isinstance(body, dict):
        raise errors.invalid_request("The request body must be a JSON object.")
    return body


def parse_chat_request(body: dict) -> ChatRequest:
    """Validate a chat-completions body, or raise a 400 naming the first bad parameter.

    Every caller's body passes here (the API's and the Playground's), so the checks on JSON
    values as such are made here too, before anything reads the body."""
    if not isinstance(body, dict):
        raise errors.invalid_request("The request body must be a JSON object.")
    check_json_values(body)
    try:
        request = ChatRequest.model_validate(body)
    except ValidationError as exc:
        raise _validation_error(exc) from None
    if request.tool_choice is not None:
        _check_tool_choice(request)
    return request


def _check_tool_choice(request: ChatRequest) -> None:
    if not request.tools:
        raise errors.invalid_request(
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are "
            "specified.",
            param="tool_choice",
        )
    choice = request.tool_choice
    if isinstance(choice, NamedToolChoice):
        names = {tool.function.name for tool in request.tools}
        if choice.function.name not in names:
            raise errors.invalid_request(
                f"Invalid value for 'tool_choice': no function named "
                f"'{choice.function.name}' in 'tools'.",
                param="tool_choice",
            )


# --- JSON values as such -----------------------------------------------------------------------


class _BadValue(Exception):
    def __init__(self, problem: str) -> None:
        self.problem = problem
        self.path: list[str] = []  # filled in innermost first, as the walk unwinds


def check_json_values(body: dict) -> None:
    """400 for a value an engine cannot read back or our own encoders would choke on."""
    try:
        _walk(body, 1)
    except _BadValue as exc:
        param = ".".join(reversed(exc.path)) or None
        where = f" at '{param}'" if param else ""
        raise errors.invalid_request(f"Invalid value{where}: {exc.problem}.", param=param) from None


def _walk(value: dict | list, depth: int) -> None:
    if depth > MAX_JSON_DEPTH:
        raise _BadValue(f"the request body is nested too deeply (over {MAX_JSON_DEPTH} levels)")
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in items:
        try:
            if isinstance(key, str) and not key.isascii():
                _check_text(key, "a key")
            if isinstance(item, str):
                if not item.isascii():
                    _check_text(item, "the string")
            elif isinstance(item, (dict, list)):
                _walk(item, depth + 1)
            elif isinstance(item, float):
                if not math.isfinite(item):
                    raise _BadValue("numbers must be finite (no NaN, Infinity or overflow)")
            elif isinstance(item, int) and not _MIN_INT <= item <= _MAX_INT:
                raise _BadValue("the number is out of range (64 bits at most)")
        except _BadValue as exc:
            exc.path.append(_printable(key))
            raise


def _check_text(text: str, what: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # "\ud800" is valid JSON but no Unicode text: it cannot be stored, logged as UTF-8 or
        # read by engines that decode strictly (llama.cpp).
        raise _BadValue(f"{what} contains a lone UTF-16 surrogate, which is not Unicode") from None


def _printable(key: object) -> str:
    return str(key).encode("utf-8", "backslashreplace").decode("utf-8")


# --- pydantic's errors in OpenAI's words -----------------------------------------------------------

_TYPE_NAMES = {"str", "int", "float", "bool", "list", "dict", "none"}


def _is_union_branch(part: object) -> bool:
    """Union branches appear in pydantic's error location ('str', 'list[...]', 'TextPart');
    dropped so that `param` reads like the JSON path the caller wrote."""
    if not isinstance(part, str):
        return False
    return part in _TYPE_NAMES or "[" in part or "-" in part or part[:1].isupper()


def _validation_error(exc: ValidationError) -> errors.GatewayError:
    # With unions (content: str | list of parts) pydantic reports one error per branch; the
    # deepest one says most about what the caller got wrong.
    first = max(exc.errors(include_url=False), key=lambda error: len(error["loc"]))
    loc: list[str] = []
    for part in first["loc"]:
        # Tagged unions repeat the tag ('image_url') before the field of the same name.
        if not _is_union_branch(part) and (not loc or loc[-1] != str(part)):
            loc.append(_printable(part))
    kind = first["type"]
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        loc.append("type")  # the tag is the `type` field of a content part or format
    param = ".".join(loc) or None
    if kind in ("missing", "union_tag_not_found"):
        message = f"Missing required parameter: '{param}'."
    elif param == "messages" and kind == "too_short":
        message = "'messages' must contain at least one message."
    else:
        message = f"Invalid value for '{param}': {first['msg']}."
    return errors.invalid_request(message, param=param)
