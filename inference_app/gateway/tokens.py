"""Counting tokens the gateway must know before the engine says: the prompt of every request
(its worst case is held before it runs), and the completion when the engine reports no usage
(a missing count is estimated and marked as such, never recorded as zero).

No tokenizer is available offline for every catalog model, so the gateway uses one documented
estimate for all of them:
- text: one token per 4 ASCII characters (OpenAI's rule of thumb for English), plus one token
  per non-ASCII character (CJK and most other scripts run close to one token per character);
- each message: 4 tokens of chat-template overhead (role markers), plus 3 for the reply primer;
- each image: the model's upper bound (CatalogModel.image_tokens_max), whatever its size, since
  the gateway never decodes images;
- `tools` and `response_format`: their JSON text, as chat templates render it (`tojson`, with
  its ", " and ": " separators), by the same rule, plus TOKENS_PER_TOOL per tool and
  TOOLS_PROMPT_TOKENS once for the instructions templates put around tools. JSON is denser in
  tokens than prose: with SmolLM2's BPE tokenizer, tool definitions rendered so ran 2.9-3.6
  characters per token (11-25 tokens more than the rule says for ordinary ones), which the
  per-tool overhead covers; larger vocabularies (Llama 3 and 4) need fewer.
  Engines that enforce a response format by grammar (llama.cpp, vLLM) put none of it in the
  prompt, so counting it is an upper bound.
While streaming, engines send about one token per content delta, so the completion count is the
larger of the number of non-empty deltas and the text estimate.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

TOKENS_PER_MESSAGE = 4
REPLY_PRIMER_TOKENS = 3
TOKENS_PER_TOOL = 32
TOOLS_PROMPT_TOKENS = 128
ASCII_CHARS_PER_TOKEN = 4


def _char_counts(text: str) -> tuple[int, int]:
    """(ASCII characters, other characters)."""
    if text.isascii():
        return len(text), 0
    ascii_chars = len(text.encode("ascii", "ignore"))  # in C: 50x a loop over characters
    return ascii_chars, len(text) - ascii_chars


def _tokens_for(ascii_chars: int, other_chars: int) -> int:
    return -(-ascii_chars // ASCII_CHARS_PER_TOKEN) + other_chars


def estimate_text_tokens(text: str) -> int:
    return _tokens_for(*_char_counts(text)) if text else 0


def estimate_prompt_tokens(body: dict, *, image_tokens: int) -> int:
    """Estimated prompt tokens of an OpenAI-format request body (as sent to the engine):
    its messages, tools and response_format; each image counts `image_tokens`."""
    total = _messages_tokens(body["messages"], image_tokens)
    # Only requests that carry them pay for the JSON encoding: text-only ones skip it.
    tools = body.get("tools")
    if tools:
        total += _json_tokens(tools) + TOKENS_PER_TOOL * len(tools) + TOOLS_PROMPT_TOKENS
    response_format = body.get("response_format")
    if response_format:
        total += _json_tokens(response_format)
    return total


def _json_tokens(value: object) -> int:
    return estimate_text_tokens(json.dumps(value, ensure_ascii=False))


def _messages_tokens(messages: Iterable[dict], image_tokens: int) -> int:
    total = REPLY_PRIMER_TOKENS
    for message in messages:
        total += TOKENS_PER_MESSAGE
        content = message.get("content")
        if isinstance(content, str):
            total += estimate_text_tokens(content)
        elif isinstance(content, list):
            for part in content:
                if not isinstance(part, dict):
                    continue
                if part.get("type") == "image_url":
                    total += image_tokens
                else:
                    total += estimate_text_tokens(str(part.get("text") or ""))
        if message.get("tool_calls"):
            total += estimate_text_tokens(str(message["tool_calls"]))
    return total


class CompletionCounter:
    """Counts completion tokens from streamed deltas or a finished message."""

    def __init__(self) -> None:
        self.deltas = 0
        self.ascii_chars = 0
        self.other_chars = 0

    def add_text(self, text: str) -> None:
        if text:
            self.deltas += 1
            ascii_chars, other_chars = _char_counts(text)
            self.ascii_chars += ascii_chars
            self.other_chars += other_chars

    @property
    def tokens(self) -> int:
        return max(self.deltas, _tokens_for(self.ascii_chars, self.other_chars))
