"""Counting tokens when the engine reports no usage (DESIGN.md lesson 6: never record zero).

No tokenizer is available offline for every catalog model, so the gateway uses one documented
estimate for all of them:
- text: one token per 4 ASCII characters (OpenAI's rule of thumb for English), plus one token
  per non-ASCII character (CJK and most other scripts run close to one token per character);
- each message: 4 tokens of chat-template overhead (role markers), plus 3 for the reply primer;
- each image: a flat 576 tokens (a 336px tile at 14px patches for Llama-style vision encoders).
While streaming, engines send about one token per content delta, so the completion count is the
larger of the number of non-empty deltas and the text estimate.
"""

from __future__ import annotations

from collections.abc import Iterable

TOKENS_PER_MESSAGE = 4
REPLY_PRIMER_TOKENS = 3
TOKENS_PER_IMAGE = 576
ASCII_CHARS_PER_TOKEN = 4


def _char_counts(text: str) -> tuple[int, int]:
    """(ASCII characters, other characters)."""
    if text.isascii():
        return len(text), 0
    ascii_chars = sum(1 for ch in text if ch < "\x80")
    return ascii_chars, len(text) - ascii_chars


def _tokens_for(ascii_chars: int, other_chars: int) -> int:
    return -(-ascii_chars // ASCII_CHARS_PER_TOKEN) + other_chars


def estimate_text_tokens(text: str) -> int:
    return _tokens_for(*_char_counts(text)) if text else 0


def estimate_prompt_tokens(messages: Iterable[dict]) -> int:
    """Estimated prompt tokens of OpenAI-format messages (dicts, as sent to the engine)."""
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
                    total += TOKENS_PER_IMAGE
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
