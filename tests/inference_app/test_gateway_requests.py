"""The request schema and the token estimate, without HTTP."""

import pytest

from inference_app.gateway import errors
from inference_app.gateway.requests import parse_chat_request, parse_json_body
from inference_app.gateway.tokens import (
    CompletionCounter,
    estimate_prompt_tokens,
    estimate_text_tokens,
)


def test_full_openai_request_is_accepted_and_extras_pass_through():
    body = {
        "model": "m",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}},
                ],
            },
            {"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]},
            {"role": "tool", "content": "42", "tool_call_id": "1"},
        ],
        "temperature": 0,
        "top_p": 0.9,
        "max_tokens": 10,
        "stop": ["\n"],
        "seed": 1,
        "n": 1,
        "presence_penalty": 0.5,
        "frequency_penalty": -0.5,
        "response_format": {"type": "json_object"},
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "tool_choice": "auto",
        "stream": True,
        "stream_options": {"include_usage": True},
        "user": "u-1",
        "top_k": 40,
    }
    request = parse_chat_request(body)
    assert request.has_images and request.include_usage
    assert request.requested_max_tokens == 10
    assert request.model_extra == {"top_k": 40}


def test_max_completion_tokens_wins_over_max_tokens():
    request = parse_chat_request(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 5,
            "max_completion_tokens": 7,
        }
    )
    assert request.requested_max_tokens == 7


def test_include_usage_needs_stream():
    request = parse_chat_request(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "hi"}],
            "stream_options": {"include_usage": True},
        }
    )
    assert not request.include_usage


@pytest.mark.parametrize(
    "body,param",
    [
        ({"messages": []}, "model"),
        ({"model": "m", "messages": [{"role": "user", "content": 5}]}, "messages.0.content"),
        ({"model": "m", "messages": [{"role": "user"}], "top_p": "1"}, "top_p"),
    ],
)
def test_errors_name_the_parameter(body, param):
    with pytest.raises(errors.GatewayError) as caught:
        parse_chat_request(body)
    assert caught.value.status == 400 and caught.value.param == param


@pytest.mark.parametrize("raw", [b"", b"{", b"null", b"[]", b"1"])
def test_body_must_be_a_json_object(raw):
    with pytest.raises(errors.GatewayError) as caught:
        parse_json_body(raw)
    assert caught.value.status == 400


def test_text_estimate():
    assert estimate_text_tokens("") == 0
    assert estimate_text_tokens("abcd") == 1
    assert estimate_text_tokens("abcde") == 2
    assert estimate_text_tokens("日本語") == 3  # one per non-ASCII character


def test_prompt_estimate_counts_messages_text_and_images():
    text_only = estimate_prompt_tokens(
        {"messages": [{"role": "user", "content": "abcdefgh"}]}, image_tokens=576
    )
    assert text_only == 3 + 4 + 2
    with_image = estimate_prompt_tokens(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "abcdefgh"},
                        {"type": "image_url", "image_url": {"url": "x"}},
                    ],
                }
            ]
        },
        image_tokens=576,
    )
    assert with_image == text_only + 576


def test_completion_counter_never_undercounts_deltas():
    counter = CompletionCounter()
    for piece in ["a", "b", "c"]:
        counter.add_text(piece)
    counter.add_text("")
    assert counter.tokens == 3  # three deltas, although three characters estimate to one
