"""Per-run metrics shown under an answer and live in Compare panes: TTFT, tokens/s, cost."""

import time
from dataclasses import dataclass, field

from billing.usage import usage_cost_micros


@dataclass
class RunMetrics:
    input_price_micros: int  # USD micros per 1M tokens
    output_price_micros: int
    started: float = field(default_factory=time.monotonic)
    first_token_at: float | None = None
    last_token_at: float | None = None
    # Content deltas seen so far: the live token estimate (engines send about one token per chunk)
    # until the usage chunk gives the real counts.
    deltas: int = 0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None

    def on_delta(self) -> None:
        now = time.monotonic()
        if self.first_token_at is None:
            self.first_token_at = now
        self.last_token_at = now
        self.deltas += 1

    def on_usage(self, usage: dict | None) -> None:
        if usage:
            self.prompt_tokens = usage.get("prompt_tokens")
            self.completion_tokens = usage.get("completion_tokens")

    @property
    def ttft_ms(self) -> int | None:
        if self.first_token_at is None:
            return None
        return round((self.first_token_at - self.started) * 1000)

    def elapsed_ms(self) -> int:
        return round((time.monotonic() - self.started) * 1000)

    @property
    def tokens(self) -> int:
        return self.completion_tokens if self.completion_tokens is not None else self.deltas

    def tokens_per_s(self) -> float | None:
        # Decode speed: tokens after the first over the time since the first.
        if self.first_token_at is None or self.tokens < 2:
            return None
        end = self.last_token_at or time.monotonic()
        span = end - self.first_token_at
        return round((self.tokens - 1) / span, 1) if span > 0 else None

    def cost_micros(self) -> int:
        """Price × tokens, as the ledger computes it (live: with the tokens seen so far)."""
        return usage_cost_micros(
            prompt_tokens=self.prompt_tokens or 0,
            completion_tokens=self.tokens,
            input_price_micros=self.input_price_micros,
            output_price_micros=self.output_price_micros,
        )

    def snapshot(self) -> dict:
        return {
            "elapsed_ms": self.elapsed_ms(),
            "ttft_ms": self.ttft_ms,
            "tokens_per_s": self.tokens_per_s(),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.tokens,
            "cost_micros": self.cost_micros(),
        }
