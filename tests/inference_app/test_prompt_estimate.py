"""The prompt estimate behind every hold: tools, response_format and images count, each by an
upper bound, so that what the engine later reports never exceeds what was held for it."""

import json

import pytest

from inference_app.gateway.tokens import (
    TOKENS_PER_TOOL,
    TOOLS_PROMPT_TOKENS,
    estimate_prompt_tokens,
    estimate_text_tokens,
)
from inference_app.models import CatalogModel
from tests.inference_app.gateway_world import (
    HELLO,
    TEXT_CONTEXT,
    TEXT_MODEL,
    VISION_MODEL,
    post_chat,
)

TEXT = [{"role": "user", "content": "abcdefgh"}]
TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def test_text_only_is_counted_as_before():
    assert estimate_prompt_tokens({"messages": TEXT}, image_tokens=2467) == 3 + 4 + 2


def test_each_image_counts_the_models_bound():
    content = [
        {"type": "text", "text": "abcdefgh"},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/b.png"}},
    ]
    messages = [{"role": "user", "content": content}]
    assert estimate_prompt_tokens({"messages": messages}, image_tokens=1000) == 3 + 4 + 2 + 2000


def test_tools_count_their_json_text_and_a_fixed_overhead():
    body = {"messages": TEXT, "tools": [TOOL, TOOL]}
    rendered = json.dumps([TOOL, TOOL], ensure_ascii=False)
    assert estimate_prompt_tokens(body, image_tokens=0) == (
        3 + 4 + 2 + estimate_text_tokens(rendered) + 2 * TOKENS_PER_TOOL + TOOLS_PROMPT_TOKENS
    )


def test_response_format_counts_its_json_text():
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "a", "schema": {"type": "object"}},
    }
    body = {"messages": TEXT, "response_format": response_format}
    expected = 3 + 4 + 2 + estimate_text_tokens(json.dumps(response_format, ensure_ascii=False))
    assert estimate_prompt_tokens(body, image_tokens=0) == expected


def test_non_ascii_in_tools_counts_one_token_per_character():
    tool = {"type": "function", "function": {"name": "f", "description": "東京の天気"}}
    with_ascii = {"type": "function", "function": {"name": "f", "description": "abcde"}}
    cjk = estimate_prompt_tokens({"messages": TEXT, "tools": [tool]}, image_tokens=0)
    ascii_ = estimate_prompt_tokens({"messages": TEXT, "tools": [with_ascii]}, image_tokens=0)
    assert cjk - ascii_ == 5 - 2  # five characters, one token each, against ceil(5 / 4)


def test_the_catalogs_image_bound_is_llama_4_scouts():
    # Up to 16 tiles of 336 px, 144 tokens each after pixel shuffle, a separator per tile,
    # the 144-token global view and 3 markers.
    assert CatalogModel._meta.get_field("image_tokens_max").default == 16 * 144 + 16 + 144 + 3


# --- through the API: the estimate decides what fits the context window ----------------------
async def test_tools_that_fill_the_context_window_are_refused(world, fake_engine):
    big = {**TOOL, "function": {**TOOL["function"], "description": "word " * TEXT_CONTEXT}}
    response = await post_chat(world, {"model": TEXT_MODEL, "messages": HELLO, "tools": [big]})
    assert response.status_code == 400, response.content
    assert "maximum context length" in response.json()["error"]["message"]
    assert fake_engine.requests == []


async def test_a_response_format_that_fills_the_context_window_is_refused(world, fake_engine):
    schema = {"type": "object", "description": "word " * TEXT_CONTEXT}
    response_format = {"type": "json_schema", "json_schema": {"name": "a", "schema": schema}}
    body = {"model": TEXT_MODEL, "messages": HELLO, "response_format": response_format}
    response = await post_chat(world, body)
    assert response.status_code == 400, response.content
    assert fake_engine.requests == []


@pytest.mark.parametrize("bound, status", [(500, 200), (TEXT_CONTEXT, 400)])
async def test_an_image_counts_its_models_bound(world, fake_engine, bound, status):
    await CatalogModel.objects.filter(model_id=VISION_MODEL).aupdate(image_tokens_max=bound)
    content = [{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]
    body = {"model": VISION_MODEL, "messages": [{"role": "user", "content": content}]}
    response = await post_chat(world, body)
    assert response.status_code == status, response.content
