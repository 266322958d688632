"""The chat-completions request as the gateway validates it (OpenAI's format).

Validation is strict about types (a string is not a number) and lenient about unknown fields:
extra top-level fields and extra message fields are passed through to the engine untouched,
because engines grow parameters faster than this schema does.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from inference_app.gateway import errors


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class ImageUrl(_Strict):
    url: Annotated[str, Field(min_length=1)]
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
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
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
    except (ValueError, UnicodeDecodeError):
        raise errors.invalid_request(
            "We could not parse the JSON body of your request. (HINT: This likely means you "
            "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload.)"
        ) from None
    if not isinstance(body, dict):
        raise errors.invalid_request("The request body must be a JSON object.")
    return body


def parse_chat_request(body: dict) -> ChatRequest:
    """Validate a chat-completions body, or raise a 400 naming the first bad parameter."""
    if not isinstance(body, dict):
        raise errors.invalid_request("The request body must be a JSON object.")
    try:
        return ChatRequest.model_validate(body)
    except ValidationError as exc:
        raise _validation_error(exc) from None


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
            loc.append(str(part))
    param = ".".join(loc) or None
    kind = first["type"]
    if kind == "missing":
        message = f"Missing required parameter: '{param}'."
    elif param == "messages" and kind == "too_short":
        message = "'messages' must contain at least one message."
    elif kind == "union_tag_invalid" or kind == "union_tag_not_found":
        message = f"Invalid content part at '{param}': {first['msg']}."
    else:
        message = f"Invalid value for '{param}': {first['msg']}."
    return errors.invalid_request(message, param=param)
