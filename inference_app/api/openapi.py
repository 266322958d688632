"""The OpenAPI 3.1 document of the /v1 API, served unauthenticated at `GET /v1/openapi.json`.

Written by hand rather than generated from the request model: it describes OpenAI's documented
shapes (what a client library sends) with descriptions and examples, while the gateway's pydantic
model is deliberately looser (unknown fields pass through to the engine). Tests keep the two in
step: every field the gateway validates is documented, and every documented example is accepted.
Error examples are built with the same constructors the gateway answers with, so the messages
here are the messages callers see.
"""

from __future__ import annotations

import functools
import json

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from inference_app.api.generation_views import generation_not_found
from inference_app.api.views import error_response
from inference_app.gateway import errors
from inference_app.gateway.pipeline import DEFAULT_MAX_TOKENS

_JSON = "application/json"
_SSE = "text/event-stream"

EXAMPLE_MODEL = "meta-llama/Llama-3.1-8B-Instruct"
EXAMPLE_VISION_MODEL = "meta-llama/Llama-4-Scout-17B-16E-Instruct"

# A 1x1 transparent PNG: the smallest image an example can carry inline.
_PIXEL_DATA_URL = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgAAACAAAB"
    "4iG8MwAAAABJRU5ErkJggg=="
)

# Request examples, by name. Each must be accepted by the gateway's own validation (tested).
CHAT_REQUEST_EXAMPLES: dict[str, dict] = {
    "simple": {
        "summary": "One question",
        "value": {
            "model": EXAMPLE_MODEL,
            "messages": [
                {"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": "What is the capital of France?"},
            ],
            "max_tokens": 64,
            "temperature": 0.2,
        },
    },
    "streaming": {
        "summary": "Streamed, with a usage chunk at the end",
        "value": {
            "model": EXAMPLE_MODEL,
            "messages": [{"role": "user", "content": "Write a haiku about the sea."}],
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    },
    "image": {
        "summary": "An image (models whose input modalities include image)",
        "value": {
            "model": EXAMPLE_VISION_MODEL,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is in this image?"},
                        {"type": "image_url", "image_url": {"url": _PIXEL_DATA_URL}},
                    ],
                }
            ],
        },
    },
    "tools": {
        "summary": "A function the model may call",
        "value": {
            "model": EXAMPLE_MODEL,
            "messages": [{"role": "user", "content": "What's the weather in Paris?"}],
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "description": "The current weather in a city.",
                        "parameters": {
                            "type": "object",
                            "properties": {"city": {"type": "string"}},
                            "required": ["city"],
                        },
                    },
                }
            ],
            "tool_choice": "auto",
        },
    },
    "json_schema": {
        "summary": "Structured output with a JSON schema",
        "value": {
            "model": EXAMPLE_MODEL,
            "messages": [{"role": "user", "content": "Name a city and its country."}],
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": "city",
                    "strict": True,
                    "schema": {
                        "type": "object",
                        "properties": {
                            "city": {"type": "string"},
                            "country": {"type": "string"},
                        },
                        "required": ["city", "country"],
                        "additionalProperties": False,
                    },
                },
            },
        },
    },
}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: dict) -> dict:
    return {"anyOf": [schema, {"type": "null"}]}


def _error_examples(*named: tuple[str, str, errors.GatewayError]) -> dict:
    return {name: {"summary": summary, "value": error.body()} for name, summary, error in named}


def _error_response(description: str, *named, headers: dict | None = None) -> dict:
    response = {
        "description": description,
        "content": {_JSON: {"schema": _ref("Error"), "examples": _error_examples(*named)}},
    }
    if headers:
        response["headers"] = headers
    return response


# The integers any engine reads (C++ and Rust parse JSON integers as 64-bit).
_MIN_INT = -(2**63)
_MAX_INT = 2**64 - 1

# Keywords whose values are data, not schemas.
_DATA_KEYWORDS = {"examples", "example", "const", "enum", "default", "required"}


_TOOL_CALL = {
    "type": "object",
    "required": ["id", "type", "function"],
    "properties": {
        "id": {"type": "string"},
        "type": {"const": "function"},
        "function": {
            "type": "object",
            "required": ["name", "arguments"],
            "properties": {
                "name": {"type": "string"},
                "arguments": {
                    "type": "string",
                    "description": "The arguments as a JSON text, as the model wrote them: "
                    "validate before use.",
                },
            },
        },
    },
}
_FUNCTION_NAME = {"type": "string", "pattern": "^[a-zA-Z0-9_-]{1,64}$"}


def _closed(schema):
    """A request schema whose objects list every field OpenAI documents and no other.

    The gateway passes unknown fields through to the engine, but nested ones mean nothing to
    engines in practice; the top level of the request stays open (see ChatCompletionRequest).
    Objects without `properties` (a tool's JSON Schema `parameters`) stay open too."""
    if isinstance(schema, list):
        return [_closed(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    closed = {
        key: value if key in _DATA_KEYWORDS else _closed(value) for key, value in schema.items()
    }
    if "properties" in schema and "additionalProperties" not in schema:
        closed["additionalProperties"] = False
    return closed


def _open_at_top(schema: dict) -> dict:
    """`_closed` below the top level; at the top, other parameters are any JSON value an
    engine can read (they go to the engine as they are)."""
    return {**_closed(schema), "additionalProperties": _ref("JsonValue")}


def _schemas(*, image_max_bytes: int) -> dict:
    return {
        **_response_schemas(),
        **{name: _closed(schema) for name, schema in _request_schemas(image_max_bytes).items()},
        "ChatCompletionRequest": _chat_request_schema(),
        "JsonValue": {
            "description": "Any JSON value an engine can read: nested at most 64 levels, "
            "integers within 64 bits, finite numbers, no lone UTF-16 surrogates in strings.",
            "anyOf": [
                {"type": ["string", "boolean", "null"]},
                {"type": "integer", "minimum": _MIN_INT, "maximum": _MAX_INT},
                {"type": "number", "minimum": _MIN_INT, "maximum": _MAX_INT},
                {"type": "array", "items": _ref("JsonValue")},
                {"type": "object", "additionalProperties": _ref("JsonValue")},
            ],
        },
    }


def _chat_request_schema() -> dict:
    return _open_at_top(
        {
            "type": "object",
            "description": "OpenAI's chat-completions request. Parameters not listed here "
            "(for example `logprobs` or `logit_bias`) are passed to the serving engine "
            "unchanged; whether they take effect depends on the engine. Every value, listed "
            "or not, must be one any engine can read: nested at most 64 levels, no lone "
            "UTF-16 surrogates (`\\ud800`), numbers finite (no `NaN`, `Infinity` or "
            "`1e309`) and integers within 64 bits; otherwise the answer is a 400 naming "
            "the parameter. Integers are written without a fraction (`64`, not `64.0`).",
            "required": ["model", "messages"],
            "properties": {
                "model": {
                    "type": "string",
                    "minLength": 1,
                    "description": "A model id from `GET /v1/models`.",
                    "examples": [EXAMPLE_MODEL],
                },
                "messages": {
                    "type": "array",
                    "minItems": 1,
                    "description": "The conversation so far, oldest first.",
                    "items": _ref("Message"),
                },
                "max_completion_tokens": {
                    **_nullable({"type": "integer", "minimum": 1, "maximum": _MAX_INT}),
                    "description": "The most tokens the answer may have. The worst case "
                    "(prompt + this many tokens at the model's prices) is held from your "
                    "credits while the request runs; you are charged for what is generated. "
                    f"Default: what fits the context window, at most {DEFAULT_MAX_TOKENS}.",
                },
                "max_tokens": {
                    **_nullable({"type": "integer", "minimum": 1, "maximum": _MAX_INT}),
                    "description": "The older name of `max_completion_tokens` (which wins when "
                    "both are given).",
                },
                "temperature": {
                    **_nullable({"type": "number", "minimum": 0, "maximum": 2}),
                    "description": "Sampling temperature: higher is more random.",
                },
                "top_p": {
                    **_nullable({"type": "number", "minimum": 0, "maximum": 1}),
                    "description": "Nucleus sampling: consider only the tokens in the top "
                    "`top_p` probability mass.",
                },
                "n": {
                    **_nullable({"type": "integer", "minimum": 1, "maximum": 16}),
                    "description": "How many answers to generate (where the engine supports it).",
                },
                "stop": {
                    "anyOf": [
                        {"type": "string"},
                        {"type": "array", "maxItems": 4, "items": {"type": "string"}},
                        {"type": "null"},
                    ],
                    "description": "Up to 4 sequences where the model stops generating.",
                },
                "seed": {
                    **_nullable({"type": "integer", "minimum": _MIN_INT, "maximum": _MAX_INT}),
                    "description": "Best-effort determinism: the same seed and parameters "
                    "should give the same answer on the same engine.",
                },
                "presence_penalty": _nullable({"type": "number", "minimum": -2, "maximum": 2}),
                "frequency_penalty": _nullable({"type": "number", "minimum": -2, "maximum": 2}),
                "response_format": _nullable(_ref("ResponseFormat")),
                "tools": {
                    **_nullable(
                        {"type": "array", "minItems": 1, "maxItems": 128, "items": _ref("Tool")}
                    ),
                    "description": "Functions the model may call. The answer then carries "
                    "`tool_calls` instead of (or beside) text.",
                },
                "tool_choice": {
                    **_nullable(_ref("ToolChoice")),
                    "description": "Only with `tools`; a named function must be one of them.",
                },
                "stream": {
                    **_nullable({"type": "boolean"}),
                    "default": False,
                    "description": "Answer as server-sent events (`text/event-stream`).",
                },
                "stream_options": {
                    **_nullable(
                        {
                            "type": "object",
                            "properties": {
                                "include_usage": {
                                    "type": "boolean",
                                    "default": False,
                                    "description": "Send a last chunk with empty `choices` "
                                    "and the request's `usage`, before `data: [DONE]`.",
                                }
                            },
                        }
                    ),
                    "description": "Only with `stream: true`.",
                },
                "user": {
                    "type": "string",
                    "description": "Your own identifier for the end user, kept with the trace.",
                },
            },
        }
    )


def _request_schemas(image_max_bytes: int) -> dict:
    text_part = {
        "type": "object",
        "title": "Text content part",
        "required": ["type", "text"],
        "properties": {"type": {"const": "text"}, "text": {"type": "string"}},
    }
    image_part = {
        "type": "object",
        "title": "Image content part",
        "description": "An image, for models whose `modalities.input` includes `image` "
        "(others answer 400).",
        "required": ["type", "image_url"],
        "properties": {
            "type": {"const": "image_url"},
            "image_url": {
                "type": "object",
                "required": ["url"],
                "properties": {
                    "url": {
                        "type": "string",
                        "pattern": "^(https?://[a-zA-Z0-9.-]+(:[0-9]+)?(/|$)|"
                        "data:image/[a-zA-Z0-9.+-]+(;[a-zA-Z0-9.+-]+=[a-zA-Z0-9.+-]+)*;base64,"
                        "[A-Za-z0-9+/]{4,}={0,2}$)",
                        "description": "An `https` or `http` URL the engine fetches (not "
                        "one on a private, loopback or link-local address), or the image "
                        f"inline as `data:image/<type>;base64,<data>`, at most {image_max_bytes} "
                        "bytes decoded.",
                        "examples": ["https://example.com/cat.png", _PIXEL_DATA_URL],
                    },
                    "detail": {"enum": ["auto", "low", "high"], "default": "auto"},
                },
            },
        },
    }
    name = {"type": "string", "description": "An optional name for the participant."}
    return {
        "TextContentPart": text_part,
        "ImageContentPart": image_part,
        "SystemMessage": {
            "type": "object",
            "title": "System or developer message",
            "description": "Instructions for the model.",
            "required": ["role", "content"],
            "properties": {
                "role": {"enum": ["system", "developer"]},
                "content": {
                    "anyOf": [
                        {"type": "string"},
                        {"type": "array", "minItems": 1, "items": _ref("TextContentPart")},
                    ]
                },
                "name": name,
            },
        },
        "UserMessage": {
            "type": "object",
            "title": "User message",
            "required": ["role", "content"],
            "properties": {
                "role": {"const": "user"},
                "content": {
                    "anyOf": [
                        {"type": "string"},
                        {
                            "type": "array",
                            "minItems": 1,
                            "items": {
                                "oneOf": [_ref("TextContentPart"), _ref("ImageContentPart")],
                                "discriminator": {
                                    "propertyName": "type",
                                    "mapping": {
                                        "text": "#/components/schemas/TextContentPart",
                                        "image_url": "#/components/schemas/ImageContentPart",
                                    },
                                },
                            },
                        },
                    ]
                },
                "name": name,
            },
        },
        "AssistantMessage": {
            "type": "object",
            "title": "Assistant message",
            "description": "An earlier answer of the model. `content` may be null when the turn "
            "only called tools.",
            "required": ["role"],
            "properties": {
                "role": {"const": "assistant"},
                "content": _nullable(
                    {
                        "anyOf": [
                            {"type": "string"},
                            {"type": "array", "items": _ref("TextContentPart")},
                        ]
                    }
                ),
                "name": name,
                "tool_calls": {"type": "array", "items": _TOOL_CALL},
            },
        },
        "ToolMessage": {
            "type": "object",
            "title": "Tool message",
            "description": "The result of a tool call, answering the call with `tool_call_id`.",
            "required": ["role", "content", "tool_call_id"],
            "properties": {
                "role": {"const": "tool"},
                "content": {
                    "anyOf": [
                        {"type": "string"},
                        {"type": "array", "minItems": 1, "items": _ref("TextContentPart")},
                    ]
                },
                "tool_call_id": {"type": "string"},
            },
        },
        "Message": {
            "oneOf": [
                _ref("SystemMessage"),
                _ref("UserMessage"),
                _ref("AssistantMessage"),
                _ref("ToolMessage"),
            ],
        },
        "Tool": {
            "type": "object",
            "required": ["type", "function"],
            "properties": {
                "type": {"const": "function"},
                "function": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": {
                            **_FUNCTION_NAME,
                            "description": "Letters, digits, `_` and `-`; at most 64.",
                        },
                        "description": {"type": "string"},
                        "parameters": {
                            "type": "object",
                            "description": "The arguments, as a JSON Schema (draft 2020-12); "
                            "an invalid schema is a 400.",
                        },
                        "strict": _nullable({"type": "boolean"}),
                    },
                },
            },
        },
        "ToolChoice": {
            "description": "`none`: answer in text; `auto` (the default with tools): the model "
            "chooses; `required`: call at least one tool; or name one function to call.",
            "anyOf": [
                {"enum": ["none", "auto", "required"]},
                {
                    "type": "object",
                    "required": ["type", "function"],
                    "properties": {
                        "type": {"const": "function"},
                        "function": {
                            "type": "object",
                            "required": ["name"],
                            "properties": {"name": _FUNCTION_NAME},
                        },
                    },
                },
            ],
        },
        "ResponseFormat": {
            "description": "`text` (the default); `json_object`: valid JSON (say so in the "
            "messages too); `json_schema`: JSON matching the given schema.",
            "oneOf": [
                {
                    "type": "object",
                    "required": ["type"],
                    "properties": {"type": {"const": "text"}},
                },
                {
                    "type": "object",
                    "required": ["type"],
                    "properties": {"type": {"const": "json_object"}},
                },
                {
                    "type": "object",
                    "required": ["type", "json_schema"],
                    "properties": {
                        "type": {"const": "json_schema"},
                        "json_schema": {
                            "type": "object",
                            "required": ["name"],
                            "properties": {
                                "name": _FUNCTION_NAME,
                                "description": {"type": "string"},
                                "schema": {
                                    "type": "object",
                                    "description": "A JSON Schema (draft 2020-12).",
                                },
                                "strict": _nullable({"type": "boolean"}),
                            },
                        },
                    },
                },
            ],
        },
    }


def _response_schemas() -> dict:
    return {
        "Error": {
            "type": "object",
            "description": "Every error, whatever the status, has this body (OpenAI's shape).",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["message", "type", "param", "code"],
                    "properties": {
                        "message": {"type": "string", "description": "For people."},
                        "type": {
                            "type": "string",
                            "description": "The error's family, e.g. `invalid_request_error`, "
                            "`rate_limit_error`, `insufficient_quota`, `server_error`.",
                        },
                        "param": {
                            **_nullable({"type": "string"}),
                            "description": "The request parameter at fault, as a dotted path "
                            "(`messages.0.content`), when there is one.",
                        },
                        "code": {
                            **_nullable({"type": "string"}),
                            "description": "For programs: `invalid_api_key`, "
                            "`unsupported_country_region_territory`, `permission_denied`, "
                            "`concurrency_limit_reached`, `insufficient_quota`, "
                            "`model_not_found`, `invalid_request_error`, `request_too_large`, "
                            "`unknown_url`, `method_not_allowed`, `server_error`, "
                            "`engine_overloaded`, `model_unavailable`.",
                        },
                    },
                }
            },
        },
        "Usage": {
            "type": "object",
            "description": "The tokens charged for. When the engine reports none they are "
            "counted by the gateway.",
            "required": ["prompt_tokens", "completion_tokens", "total_tokens"],
            "properties": {
                "prompt_tokens": {"type": "integer", "minimum": 0},
                "completion_tokens": {"type": "integer", "minimum": 0},
                "total_tokens": {"type": "integer", "minimum": 0},
            },
        },
        "ChatCompletion": {
            "type": "object",
            "required": ["id", "object", "created", "model", "choices", "usage"],
            "properties": {
                "id": {
                    "type": "string",
                    "description": "The request id, also in the `x-request-id` header and in "
                    "your usage history.",
                },
                "object": {"const": "chat.completion"},
                "created": {"type": "integer", "description": "Unix time, seconds."},
                "model": {"type": "string"},
                "choices": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["index", "message", "finish_reason"],
                        "properties": {
                            "index": {"type": "integer"},
                            "message": {
                                "type": "object",
                                "required": ["role"],
                                "properties": {
                                    "role": {"const": "assistant"},
                                    "content": _nullable({"type": "string"}),
                                    "tool_calls": {"type": "array", "items": _TOOL_CALL},
                                },
                            },
                            "finish_reason": {
                                **_nullable({"type": "string"}),
                                "description": "`stop`, `length` (hit the token limit), "
                                "`tool_calls`.",
                            },
                            "logprobs": {},
                        },
                    },
                },
                "usage": _ref("Usage"),
            },
            "examples": [
                {
                    "id": "chatcmpl-1f0c2a4e9d8b4c7aa0e5b1c2d3e4f5a6",
                    "object": "chat.completion",
                    "created": 1767225600,
                    "model": EXAMPLE_MODEL,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": "Paris."},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 24, "completion_tokens": 3, "total_tokens": 27},
                }
            ],
        },
        "ChatCompletionChunk": {
            "type": "object",
            "description": "One `data:` line of a stream. With "
            "`stream_options.include_usage`, the last chunk has `choices: []` and `usage`.",
            "required": ["id", "object", "created", "model", "choices"],
            "properties": {
                "id": {"type": "string"},
                "object": {"const": "chat.completion.chunk"},
                "created": {"type": "integer"},
                "model": {"type": "string"},
                "choices": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "index": {"type": "integer"},
                            "delta": {
                                "type": "object",
                                "properties": {
                                    "role": {"type": "string"},
                                    "content": _nullable({"type": "string"}),
                                    "tool_calls": {"type": "array"},
                                },
                            },
                            "finish_reason": _nullable({"type": "string"}),
                        },
                    },
                },
                "usage": _nullable(_ref("Usage")),
            },
        },
        "ChatCompletionStreamEvent": {
            "type": "object",
            "description": "One server-sent event of a streamed answer.",
            "required": ["data"],
            "properties": {
                "data": {
                    "type": "string",
                    "description": "A `ChatCompletionChunk` as JSON; or, when the stream breaks "
                    "off, an `Error` as JSON (the last event); or `[DONE]` (the last event of a "
                    "complete stream).",
                    "examples": [
                        '{"id":"chatcmpl-1f0c2a4e","object":"chat.completion.chunk",'
                        '"created":1767225600,"model":"meta-llama/Llama-3.1-8B-Instruct",'
                        '"choices":[{"index":0,"delta":{"content":"Hello"},'
                        '"finish_reason":null}]}',
                        "[DONE]",
                    ],
                }
            },
        },
        "Model": {
            "type": "object",
            "description": "OpenAI's model object, with the catalog's details beside it.",
            "required": ["id", "object", "created", "owned_by"],
            "properties": {
                "id": {"type": "string", "examples": [EXAMPLE_MODEL]},
                "object": {"const": "model"},
                "created": {"type": "integer"},
                "owned_by": {"type": "string"},
                "display_name": {"type": "string"},
                "description": {"type": "string"},
                "context_window": {"type": "integer", "description": "In tokens."},
                "modalities": {
                    "type": "object",
                    "properties": {
                        "input": {"type": "array", "items": {"enum": ["text", "image"]}},
                        "output": {"type": "array", "items": {"enum": ["text"]}},
                    },
                },
                "parameters": {
                    "type": "object",
                    "description": "Size in billions of parameters, as decimal strings "
                    "(`active_billions` only for mixtures of experts).",
                    "properties": {
                        "active_billions": _nullable({"type": "string"}),
                        "total_billions": _nullable({"type": "string"}),
                    },
                },
                "pricing": {
                    "type": "object",
                    "description": "Prices per million tokens, in USD as decimal strings and "
                    "in integer micro-dollars (1 USD = 1,000,000).",
                    "properties": {
                        "currency": {"const": "USD"},
                        "unit": {"const": "1M tokens"},
                        "input": {"type": "string", "examples": ["0.22"]},
                        "output": {"type": "string", "examples": ["0.22"]},
                        "input_micros": {"type": "integer"},
                        "output_micros": {"type": "integer"},
                    },
                },
            },
        },
        "ModelList": {
            "type": "object",
            "required": ["object", "data"],
            "properties": {
                "object": {"const": "list"},
                "data": {"type": "array", "items": _ref("Model")},
            },
        },
        "BillingBalance": {
            "type": "object",
            "description": "Amounts are integer micro-dollars (1 USD = 1,000,000).",
            "required": ["object", "organization", "plan", "balance_micros", "usage_this_month"],
            "properties": {
                "object": {"const": "billing.balance"},
                "organization": {
                    "type": "object",
                    "properties": {"slug": {"type": "string"}, "name": {"type": "string"}},
                },
                "plan": {
                    "type": "object",
                    "properties": {
                        "code": {"type": "string", "examples": ["free", "pro"]},
                        "name": {"type": "string"},
                        "allows_overage": {
                            "type": "boolean",
                            "description": "Paid plans keep working past their credits and "
                            "are invoiced monthly for the overage, up to the spend cap.",
                        },
                    },
                },
                "balance_micros": {"type": "integer"},
                "balance_usd": {"type": "string", "examples": ["18.500000"]},
                "credits_remaining_micros": {"type": "integer"},
                "reserved_micros": {
                    "type": "integer",
                    "description": "Held for requests running now (their worst case).",
                },
                "usage_this_month": {
                    "type": "object",
                    "properties": {
                        "month": _nullable({"type": "string", "examples": ["2026-11"]}),
                        "requests": {"type": "integer"},
                        "tokens": {"type": "integer"},
                        "cost_micros": {"type": "integer"},
                        "overage_micros": {"type": "integer"},
                        "projected_overage_micros": {"type": "integer"},
                    },
                },
                "limits": {
                    "type": "object",
                    "properties": {
                        "monthly_spend_cap_micros": {"type": "integer"},
                        "user_concurrency": {"type": "integer"},
                        "project_concurrency": {"type": "integer"},
                    },
                },
            },
            "examples": [
                {
                    "object": "billing.balance",
                    "organization": {"slug": "acme", "name": "Acme"},
                    "plan": {"code": "pro", "name": "Pro", "allows_overage": True},
                    "balance_micros": 18500000,
                    "balance_usd": "18.500000",
                    "credits_remaining_micros": 18500000,
                    "reserved_micros": 0,
                    "usage_this_month": {
                        "month": "2026-11",
                        "requests": 42,
                        "tokens": 12345,
                        "cost_micros": 1500000,
                        "overage_micros": 0,
                        "projected_overage_micros": 0,
                    },
                    "limits": {
                        "monthly_spend_cap_micros": 500000000,
                        "user_concurrency": 16,
                        "project_concurrency": 32,
                    },
                }
            ],
        },
    }


def _responses(limit_bytes: int) -> dict:
    request_id = {
        "description": "The request id (the completion's `id`): quote it when asking for help.",
        "schema": {"type": "string"},
    }
    return {
        "BadRequest": _error_response(
            "The request is malformed: not JSON, a missing or invalid parameter, an image for "
            "a text-only model, more tokens than the context window. `param` names the culprit.",
            (
                "missing",
                "A missing parameter",
                errors.invalid_request("Missing required parameter: 'messages'.", "messages"),
            ),
            (
                "not_json",
                "A body that is not JSON",
                errors.invalid_request(
                    "We could not parse the JSON body of your request. (HINT: This likely "
                    "means you aren't using your HTTP library correctly. The OpenAI API "
                    "expects a JSON payload.)"
                ),
            ),
        ),
        "Unauthorized": _error_response(
            "No key, an unknown or revoked key, or an `OpenAI-Project` the key's user cannot use.",
            ("invalid_api_key", "Invalid key or project", errors.invalid_api_key()),
        ),
        "Forbidden": _error_response(
            "The caller's country is not served, or (billing) the caller is not an admin of "
            "the organization.",
            ("country", "Blocked country", errors.unsupported_country()),
            (
                "not_admin",
                "Not an organization admin",
                errors.permission_denied("Only organization admins can read billing details"),
            ),
        ),
        "ModelNotFound": _error_response(
            "No such model, or it has no deployment serving it.",
            ("model_not_found", "Unknown model", errors.model_not_found(EXAMPLE_MODEL + "-x")),
        ),
        "TooLarge": _error_response(
            f"The body is over {limit_bytes} bytes. It is refused before it is read.",
            ("too_large", "Oversized body", errors.request_too_large(limit_bytes)),
        ),
        "RateLimited": _error_response(
            "Either too many requests at once for your user or project (retry after "
            "`Retry-After` seconds), or no credits left (`insufficient_quota`: retrying will not "
            "help; upgrade or buy credits).",
            ("concurrency", "Concurrency limit", errors.concurrency_limit_reached()),
            ("quota", "Out of credits", errors.insufficient_quota()),
            headers={
                "Retry-After": {
                    "description": "Seconds to wait (concurrency limit only).",
                    "schema": {"type": "integer"},
                },
                "x-should-retry": {
                    "description": "`false` on `insufficient_quota`: the official clients do "
                    "not retry then.",
                    "schema": {"type": "string"},
                },
            },
        ),
        "ServerError": _error_response(
            "An error of ours or of the serving engine. You are not charged for a request "
            "that got no answer.",
            ("server_error", "Server error", errors.server_error()),
            headers={"x-request-id": request_id},
        ),
        "Overloaded": _error_response(
            "The model's engines are busy (overloaded), or none of them answers (unavailable): "
            "retry later.",
            ("engine_overloaded", "Overloaded", errors.engine_overloaded()),
            ("model_unavailable", "Unavailable", errors.model_unavailable("model-id")),
        ),
    }


def _error_refs(*statuses: str) -> dict:
    names = {
        "400": "BadRequest",
        "401": "Unauthorized",
        "403": "Forbidden",
        "404": "ModelNotFound",
        "413": "TooLarge",
        "429": "RateLimited",
        "500": "ServerError",
        "503": "Overloaded",
    }
    return {status: {"$ref": f"#/components/responses/{names[status]}"} for status in statuses}


_PROJECT_HEADER = {"$ref": "#/components/parameters/OpenAIProject"}

_STREAM_DESCRIPTION = """\
With `stream: true`: server-sent events, one `data: {chat.completion.chunk}` line each, then \
`data: [DONE]`. With `stream_options.include_usage`, a last chunk before `[DONE]` has empty \
`choices` and the request's `usage`. An error after the stream started arrives as one \
`data: {"error": {...}}` line (the Error shape) and the stream ends without `[DONE]`; the \
official clients raise on it.

```
data: {"id":"chatcmpl-…","object":"chat.completion.chunk","created":1767225600,\
"model":"meta-llama/Llama-3.1-8B-Instruct","choices":[{"index":0,"delta":{"role":"assistant",\
"content":"Hello"},"finish_reason":null}]}

data: {"id":"chatcmpl-…","object":"chat.completion.chunk","created":1767225600,\
"model":"meta-llama/Llama-3.1-8B-Instruct","choices":[],"usage":{"prompt_tokens":9,\
"completion_tokens":2,"total_tokens":11}}

data: [DONE]
```
"""


_INTEGER_OR_NULL = {"type": ["integer", "null"]}
_GENERATION = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "data": {
            "type": "object",
            "required": ["id", "trace_id", "span_id", "model", "status", "created_at"],
            "properties": {
                "id": {"type": "string"},
                "trace_id": {"type": "string", "description": "W3C trace id (32 hex digits)."},
                "span_id": {"type": "string", "description": "The call's span (16 hex digits)."},
                "model": {"type": "string"},
                "deployment": {"type": "string"},
                "created_at": {"type": "string", "format": "date-time"},
                "streamed": {"type": "boolean"},
                "cancelled": {"type": "boolean"},
                "status": {"enum": ["ok", "error", "cancelled", "lost"]},
                "finish_reason": {"type": ["string", "null"]},
                "latency": {"type": "integer", "description": "Milliseconds, start to end."},
                "generation_time": _INTEGER_OR_NULL,
                "time_to_first_token": _INTEGER_OR_NULL,
                "tokens_prompt": {"type": "integer"},
                "tokens_completion": {"type": "integer"},
                "tokens_counted_by_gateway": {"type": "boolean"},
                "total_cost_micros": _INTEGER_OR_NULL,
                "total_cost": {"type": ["string", "null"], "examples": ["0.000017"]},
                "source": {"enum": ["api", "playground", "compare", "evaluation", "otel"]},
            },
        }
    },
}


def build_document(*, max_request_bytes: int, image_max_bytes: int) -> dict:
    """The document as a dict (tests validate it; the view serves it as JSON)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Yardstick Inference API",
            "version": "1",
            "description": (
                "An OpenAI-compatible API: point the official `openai` client (or curl) at "
                "this server's `/v1` with a Yardstick API key.\n\n"
                "```python\nfrom openai import OpenAI\n"
                'client = OpenAI(base_url="https://yardstick.example/v1", api_key="ys-...",\n'
                '                default_headers={"OpenAI-Project": "my-team/my-project"})\n'
                "client.chat.completions.create(\n"
                f'    model="{EXAMPLE_MODEL}",\n'
                '    messages=[{"role": "user", "content": "Hello"}])\n```\n\n'
                "Usage is charged to the organization of the project the request names "
                "(`OpenAI-Project: team/project`), or to your default project. Every error "
                'has the body `{"error": {"message", "type", "param", "code"}}`.\n\n'
                "OpenTelemetry: `POST /otel/v1/traces` (outside `/v1`) takes OTLP/HTTP trace "
                "exports (`application/x-protobuf` or `application/json`, gzip allowed) with "
                "the same key and `OpenAI-Project` header, and records the spans in the "
                "project's traces. Set `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` to it and "
                "`OTEL_EXPORTER_OTLP_HEADERS` to `Authorization=Bearer ys-...,"
                "OpenAI-Project=team/project`."
            ),
        },
        "servers": [{"url": "/v1", "description": "This server"}],
        "security": [{"ApiKey": []}],
        "tags": [
            {"name": "Chat", "description": "Text generation."},
            {"name": "Models", "description": "What can be called, with prices."},
            {"name": "Billing", "description": "Credits and usage, for organization admins."},
            {"name": "Traces", "description": "What was recorded of your calls."},
            {"name": "Evaluations", "description": _EVALUATIONS_DESCRIPTION},
        ],
        "paths": {
            "/chat/completions": {
                "post": {
                    "operationId": "createChatCompletion",
                    "tags": ["Chat"],
                    "summary": "Create a chat completion",
                    "description": "The model's answer to a conversation, whole or streamed. "
                    "The request's worst-case cost is held from your credits while it runs; "
                    "you are charged for the tokens used.",
                    "parameters": [_PROJECT_HEADER],
                    "requestBody": {
                        "required": True,
                        "content": {
                            _JSON: {
                                "schema": _ref("ChatCompletionRequest"),
                                "examples": CHAT_REQUEST_EXAMPLES,
                            }
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "The answer: a `chat.completion` object, or with "
                            "`stream: true` a stream of events.\n\n" + _STREAM_DESCRIPTION,
                            "headers": {
                                "x-request-id": {
                                    "description": "The request id (the completion's `id`).",
                                    "schema": {"type": "string"},
                                }
                            },
                            "content": {
                                _JSON: {"schema": _ref("ChatCompletion")},
                                # In OpenAPI 3.1 an event stream's schema describes one
                                # event (its fields: data, event, id, retry).
                                _SSE: {"schema": _ref("ChatCompletionStreamEvent")},
                            },
                        },
                        **_error_refs("400", "401", "403", "404", "413", "429", "500", "503"),
                    },
                }
            },
            "/models": {
                "get": {
                    "operationId": "listModels",
                    "tags": ["Models"],
                    "summary": "List models",
                    "description": "The models you can call now (those with a deployment), "
                    "with context window, input modalities and prices.",
                    "parameters": [_PROJECT_HEADER],
                    "responses": {
                        "200": {
                            "description": "The models.",
                            "content": {_JSON: {"schema": _ref("ModelList")}},
                        },
                        **_error_refs("401", "403", "500"),
                    },
                }
            },
            "/models/{model}": {
                "get": {
                    "operationId": "retrieveModel",
                    "tags": ["Models"],
                    "summary": "Retrieve a model",
                    "parameters": [
                        {
                            "name": "model",
                            "in": "path",
                            "required": True,
                            "description": "A model id. Ids contain a slash: send it as is "
                            "(`/v1/models/meta-llama/Llama-3.1-8B-Instruct`) or "
                            "percent-encoded.",
                            "schema": {"type": "string", "minLength": 1},
                            "example": EXAMPLE_MODEL,
                        },
                        _PROJECT_HEADER,
                    ],
                    "responses": {
                        "200": {
                            "description": "The model.",
                            "content": {_JSON: {"schema": _ref("Model")}},
                        },
                        **_error_refs("401", "403", "404", "500"),
                    },
                }
            },
            "/billing/balance": {
                "get": {
                    "operationId": "getBillingBalance",
                    "tags": ["Billing"],
                    "summary": "Credit balance and this month's usage",
                    "description": "The balance, plan, month-to-date usage and limits of the "
                    "organization of your project (`OpenAI-Project`, or your default). Only "
                    "that organization's admins may read it.",
                    "parameters": [_PROJECT_HEADER],
                    "responses": {
                        "200": {
                            "description": "The organization's balance.",
                            "content": {_JSON: {"schema": _ref("BillingBalance")}},
                        },
                        **_error_refs("401", "403", "500"),
                    },
                }
            },
            "/generation": {
                "get": {
                    "operationId": "getGeneration",
                    "tags": ["Traces"],
                    "summary": "A call's latency, tokens and cost",
                    "description": "The recorded figures of one chat completion of your project, "
                    "by its request id (the completion's `id`, also sent as `x-request-id`). "
                    "Calls are recorded a moment after their response: a 404 just after a call "
                    "may mean not yet.",
                    "parameters": [
                        {
                            "name": "id",
                            "in": "query",
                            "required": True,
                            "description": "The request id.",
                            "schema": {"type": "string", "minLength": 1},
                            "example": "chatcmpl-3f2a9c1e4b5d6a7f8e9d0c1b",
                        },
                        _PROJECT_HEADER,
                    ],
                    "responses": {
                        "200": {
                            "description": "The call. Times in milliseconds; cost in "
                            "micro-dollars and as a decimal string of dollars (null for calls "
                            "that were not charged here).",
                            "content": {_JSON: {"schema": _GENERATION}},
                        },
                        "404": _error_response(
                            "No call with this id in your project (yet).",
                            (
                                "generation_not_found",
                                "Not found, or not recorded yet",
                                generation_not_found("chatcmpl-3f2a9c1e4b5d6a7f8e9d0c1b"),
                            ),
                        ),
                        **_error_refs("400", "401", "403", "500"),
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "getOpenAPIDocument",
                    "summary": "This document",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "The OpenAPI 3.1 document of this API.",
                            "content": {_JSON: {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
            **_evaluation_paths(),
        },
        "components": {
            "securitySchemes": {
                "ApiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "`Authorization: Bearer ys-...`: an API key from Settings → "
                    "API keys. A bad key, a revoked key, or a key whose user has left the team "
                    "gets 401.",
                }
            },
            "parameters": {
                "OpenAIProject": {
                    "name": "OpenAI-Project",
                    "in": "header",
                    "required": False,
                    "description": "The team and project usage is tracked against, as "
                    "`team/project`. Without it, your default project. A project your user "
                    "cannot use gets 401.",
                    "schema": {"type": "string", "pattern": "^[^/]+/[^/]+$"},
                    "example": "acme/main",
                }
            },
            "schemas": {**_schemas(image_max_bytes=image_max_bytes), **_evaluation_schemas()},
            "responses": _responses(max_request_bytes),
        },
    }


@functools.cache
def _document_bytes(max_request_bytes: int, image_max_bytes: int) -> bytes:
    document = build_document(max_request_bytes=max_request_bytes, image_max_bytes=image_max_bytes)
    return json.dumps(document, indent=1).encode()


async def openapi_json(request: HttpRequest) -> HttpResponse:
    """`GET /v1/openapi.json`: no key needed (the document holds nothing private)."""
    if request.method not in ("GET", "HEAD"):
        return error_response(errors.method_not_allowed(request.method, request.path))
    return HttpResponse(
        _document_bytes(settings.MAX_REQUEST_BYTES, settings.IMAGE_DATA_URL_MAX_BYTES),
        content_type=_JSON,
        headers={"Access-Control-Allow-Origin": "*"},
    )


# --- Evaluations (evaluations/api.py): datasets, evaluations, leaderboards ----------------------

_EVALUATIONS_DESCRIPTION = (
    "Evaluations for scripts: upload a dataset, start an evaluation (a dataset version x "
    "scorers x models x trials, run in the background), poll it, read its results, and read "
    "a leaderboard. Same key and `OpenAI-Project` header as the rest of `/v1`; everything "
    "belongs to that project (leaderboards to its team). Another project's ids are 404."
)

_OBJECT = {"type": "object"}
_MONEY = {
    "type": ["string", "null"],
    "description": "Dollars as a decimal string (the `_micros` field has micro-dollars).",
    "examples": ["0.000420"],
}


def _not_found_response(kind: str, example_id: int = 42) -> dict:
    return _error_response(
        f"No such {kind} in your project (another project's or organization's ids are 404 too).",
        (
            f"{kind}_not_found",
            "Not found",
            errors.GatewayError(
                status=404,
                message=f"No {kind} {example_id} in this project.",
                type="invalid_request_error",
                code=f"{kind}_not_found",
            ),
        ),
    )


def _evaluation_schemas() -> dict:
    dataset_version = {
        "type": "object",
        "required": ["object", "id", "name", "version", "content_hash", "row_count", "columns"],
        "properties": {
            "object": {"const": "dataset.version"},
            "id": {
                "type": "integer",
                "description": "The version's id (an evaluation's `dataset`).",
            },
            "dataset_id": {"type": "integer"},
            "name": {"type": "string"},
            "version": {"type": "integer", "description": "1, 2, ... per dataset."},
            "content_hash": {"type": "string", "description": "SHA-256 of the rows."},
            "row_count": {"type": "integer"},
            "columns": {"type": "array", "items": {"type": "string"}},
            "source": {"enum": ["upload", "traces", "api"]},
            "created_at": {"type": "string", "format": "date-time"},
            "created": {
                "type": "boolean",
                "description": "False when the same rows were stored before (the same version).",
            },
        },
    }
    evaluation = {
        "type": "object",
        "required": ["object", "id", "name", "status", "calls"],
        "properties": {
            "object": {"const": "evaluation"},
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "status": {
                "enum": ["queued", "running", "completed", "cancelled", "budget_exceeded", "failed"]
            },
            "dataset": _OBJECT,
            "models": {"type": "array", "items": _OBJECT},
            "scorers": {"type": "array", "items": _OBJECT},
            "trials": {"type": "integer"},
            "calls": {"type": "integer", "description": "Predictions plus judge calls."},
            "estimate": _MONEY,
            "estimate_micros": {"type": "integer"},
            "worst_case": _MONEY,
            "worst_case_micros": {"type": "integer"},
            "budget": _MONEY,
            "budget_micros": _INTEGER_OR_NULL,
            "spent": _MONEY,
            "spent_micros": {"type": "integer"},
            "progress": {
                "type": "object",
                "description": "Predictions done, errors, skipped, total, percent, eta_seconds.",
            },
            "summary": {
                "type": ["array", "null"],
                "items": _OBJECT,
                "description": "Per model once the run is over: each scorer's mean with its "
                "95% interval (`low`, `high`), pass rate, cost per item, p50/p95 latency.",
            },
        },
    }
    leaderboard = {
        "type": "object",
        "required": ["object", "id", "name", "columns", "rows"],
        "properties": {
            "object": {"const": "leaderboard"},
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "description": {"type": "string"},
            "team": {"type": "string"},
            "columns": {"type": "array", "items": _OBJECT},
            "rows": {
                "type": "array",
                "items": _OBJECT,
                "description": "A model per row; a cell per column: value, low, high (95% "
                "interval), n; null without a result.",
            },
            "chart": {"type": "array", "items": _OBJECT},
            "good_enough_model": {"type": ["string", "null"]},
        },
    }

    def listing(item: dict) -> dict:
        return {
            "type": "object",
            "required": ["object", "data"],
            "properties": {"object": {"const": "list"}, "data": {"type": "array", "items": item}},
        }

    return {
        "DatasetVersion": dataset_version,
        "DatasetVersionList": listing(_ref("DatasetVersion")),
        "Evaluation": evaluation,
        "EvaluationList": listing(_ref("Evaluation")),
        "EvaluationResults": {
            "type": "object",
            "required": ["object", "data", "has_more"],
            "properties": {
                "object": {"const": "list"},
                "evaluation_id": {"type": "integer"},
                "status": {"type": "string"},
                "has_more": {"type": "boolean"},
                "data": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["row", "model", "trial", "status"],
                        "properties": {
                            "row": {"type": "integer"},
                            "item": _nullable(_OBJECT),
                            "model": {"type": "string"},
                            "trial": {"type": "integer"},
                            "status": {"enum": ["pending", "running", "done", "error", "skipped"]},
                            "output": {"type": "string"},
                            "scores": _OBJECT,
                            "latency_ms": _INTEGER_OR_NULL,
                            "cost_micros": {"type": "integer"},
                            "cost": _MONEY,
                            "request_id": {"type": ["string", "null"]},
                        },
                    },
                },
            },
        },
        "Leaderboard": leaderboard,
        "LeaderboardList": listing(_OBJECT),
    }


def _json_body(schema: dict, example: dict) -> dict:
    return {"required": True, "content": {_JSON: {"schema": schema, "example": example}}}


def _ok(description: str, schema_name: str, status: str = "200") -> dict:
    return {status: {"description": description, "content": {_JSON: {"schema": _ref(schema_name)}}}}


def _id_parameter(name: str) -> dict:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
    }


def _evaluation_paths() -> dict:
    tags = ["Evaluations"]
    common = [_PROJECT_HEADER]
    dataset_request = {
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "rows"],
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 100},
            "rows": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "description": "`input` (a string) or `messages` (a chat), optionally "
                    "`expected`, and any other columns as variables.",
                },
            },
        },
    }
    evaluation_request = {
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "dataset", "models", "scorers"],
        "properties": {
            "name": {
                "type": "string",
                "minLength": 1,
                "maxLength": 100,
                "description": "Runs of one name are one evaluation over time; a leaderboard "
                "column reads the latest finished one.",
            },
            "dataset": {
                "type": ["string", "integer"],
                "description": "A dataset's name (its latest version, or `version`) or a "
                "dataset version's `id`.",
            },
            "version": {"type": "integer", "minimum": 1},
            "models": {
                "type": "array",
                "minItems": 1,
                "maxItems": 6,
                "items": {
                    "type": "object",
                    "required": ["model"],
                    "properties": {
                        "model": {"type": "string"},
                        "params": {
                            "type": "object",
                            "description": "temperature, top_p, max_tokens, seed.",
                        },
                    },
                },
            },
            "scorers": {
                "type": "array",
                "minItems": 1,
                "maxItems": 10,
                "items": {
                    "type": "object",
                    "required": ["scorer"],
                    "properties": {
                        "name": {"type": "string"},
                        "scorer": {
                            "type": "string",
                            "description": "exact_match, contains, contains_any, contains_all, "
                            "regex, valid_json, json_schema, numeric, similarity, llm_judge.",
                        },
                        "args": _OBJECT,
                        "mapping": {
                            "type": "object",
                            "description": "The scorer's input -> the dataset's column, e.g. "
                            '`{"expected": "target"}`.',
                        },
                    },
                },
            },
            "trials": {"type": "integer", "minimum": 1, "maximum": 10},
            "system_prompt": {"type": "string"},
            "budget": {
                "type": ["number", "string", "null"],
                "description": "Dollars; the run stops (`budget_exceeded`) before a call "
                "whose worst case would pass it.",
            },
        },
    }
    leaderboard_request = {
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "columns"],
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 100},
            "description": {"type": "string"},
            "show_arena": {"type": "boolean"},
            "columns": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["evaluation"],
                    "properties": {
                        "evaluation": {"type": "string"},
                        "scorer": {"type": "string"},
                        "metric": {"enum": ["mean", "pass_rate", "cost_per_item", "latency_p50"]},
                        "minimize": {"type": "boolean"},
                    },
                },
            },
        },
    }
    evaluation_id = _id_parameter("evaluation_id")
    return {
        "/datasets": {
            "get": {
                "operationId": "listDatasets",
                "tags": tags,
                "summary": "The project's dataset versions",
                "parameters": common,
                "responses": {
                    **_ok("Every version, by dataset name.", "DatasetVersionList"),
                    **_error_refs("401", "403", "500"),
                },
            },
            "post": {
                "operationId": "createDataset",
                "tags": tags,
                "summary": "Store rows as a dataset version",
                "description": "JSON `{name, rows}`, or `multipart/form-data` with `name` and "
                "a `file` (JSONL, JSON or CSV). A bad row refuses the whole dataset, naming "
                "its line. The same rows again answer 200 with the existing version.",
                "parameters": common,
                "requestBody": _json_body(
                    dataset_request,
                    {"name": "qa", "rows": [{"input": "What is 2 + 2?", "expected": "4"}]},
                ),
                "responses": {
                    **_ok("The same rows were stored before.", "DatasetVersion"),
                    **_ok("A new version.", "DatasetVersion", "201"),
                    **_error_refs("400", "401", "403", "413", "500"),
                },
            },
        },
        "/evaluations": {
            "get": {
                "operationId": "listEvaluations",
                "tags": tags,
                "summary": "The project's evaluations, newest first",
                "parameters": common,
                "responses": {
                    **_ok("The latest 100.", "EvaluationList"),
                    **_error_refs("401", "403", "500"),
                },
            },
            "post": {
                "operationId": "createEvaluation",
                "tags": tags,
                "summary": "Create and start an evaluation",
                "description": "Answers 201 with the number of calls, the estimate and the "
                "worst case, and starts the run in the background. A 400 lists every problem "
                "(`param` names the first field).",
                "parameters": common,
                "requestBody": _json_body(
                    evaluation_request,
                    {
                        "name": "QA",
                        "dataset": "qa",
                        "models": [{"model": EXAMPLE_MODEL, "params": {"temperature": 0}}],
                        "scorers": [
                            {
                                "name": "exact_match",
                                "scorer": "exact_match",
                                "mapping": {"expected": "target"},
                            }
                        ],
                        "budget": "0.50",
                    },
                ),
                "responses": {
                    **_ok("Created and started.", "Evaluation", "201"),
                    "404": _not_found_response("dataset"),
                    **_error_refs("400", "401", "403", "413", "500"),
                },
            },
        },
        "/evaluations/{evaluation_id}": {
            "get": {
                "operationId": "getEvaluation",
                "tags": tags,
                "summary": "Status, progress, money spent; the summary once done",
                "parameters": [evaluation_id, *common],
                "responses": {
                    **_ok("The evaluation.", "Evaluation"),
                    "404": _not_found_response("evaluation"),
                    **_error_refs("401", "403", "500"),
                },
            }
        },
        "/evaluations/{evaluation_id}/results": {
            "get": {
                "operationId": "getEvaluationResults",
                "tags": tags,
                "summary": "Every prediction: output, scores, latency, cost",
                "parameters": [
                    evaluation_id,
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": 10_000},
                    },
                    {
                        "name": "offset",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 0, "maximum": 10**9},
                    },
                    *common,
                ],
                "responses": {
                    **_ok("By row, model and trial.", "EvaluationResults"),
                    "404": _not_found_response("evaluation"),
                    **_error_refs("400", "401", "403", "500"),
                },
            }
        },
        "/evaluations/{evaluation_id}/cancel": {
            "post": {
                "operationId": "cancelEvaluation",
                "tags": tags,
                "summary": "Cancel a run (pending predictions are skipped, never billed)",
                "parameters": [evaluation_id, *common],
                "responses": {
                    **_ok("The evaluation, cancelled (or already over).", "Evaluation"),
                    "404": _not_found_response("evaluation"),
                    **_error_refs("401", "403", "413", "500"),
                },
            }
        },
        "/leaderboards": {
            "get": {
                "operationId": "listLeaderboards",
                "tags": tags,
                "summary": "The team's leaderboards",
                "parameters": common,
                "responses": {
                    **_ok("The leaderboards of the project's team.", "LeaderboardList"),
                    **_error_refs("401", "403", "500"),
                },
            },
            "post": {
                "operationId": "createLeaderboard",
                "tags": tags,
                "summary": "Create a leaderboard for the project's team",
                "description": "Columns as in Weave: an evaluation (by name: its latest "
                "finished run), a scorer, a metric and whether lower is better.",
                "parameters": common,
                "requestBody": _json_body(
                    leaderboard_request,
                    {
                        "name": "Inference Leaderboard",
                        "columns": [
                            {"evaluation": "QA", "scorer": "exact_match", "metric": "mean"}
                        ],
                    },
                ),
                "responses": {
                    **_ok("The leaderboard and its table.", "Leaderboard", "201"),
                    **_error_refs("400", "401", "403", "413", "500"),
                },
            },
        },
        "/leaderboards/{leaderboard_id}": {
            "get": {
                "operationId": "getLeaderboard",
                "tags": tags,
                "summary": "A leaderboard's table, each cell with its 95% interval",
                "parameters": [_id_parameter("leaderboard_id"), *common],
                "responses": {
                    **_ok("The table.", "Leaderboard"),
                    "404": _not_found_response("leaderboard"),
                    **_error_refs("401", "403", "500"),
                },
            }
        },
    }
