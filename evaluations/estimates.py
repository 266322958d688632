"""What an evaluation will cost, before it starts: the number of calls, a likely cost and the
worst case, from the catalog's prices.

- Prompt tokens: the caller's estimator (`count_prompt_tokens`, the gateway's, which holds the
  same worst case before each call), over the body each prediction will send.
- Worst case: every answer runs to `max_tokens`. This is what the run holds against the budget.
- Likely: an answer about as long as the row's expected answer (4 characters a token, at least
  MIN_LIKELY_TOKENS, at most max_tokens), or half of max_tokens when the row has none.
- Each call is rounded up to a whole micro-dollar, as billing rounds each request.
- An llm_judge scorer makes one judge call per prediction: its prompt is the judge's messages
  (rubric, the row's variables, the answer), its answer at most JUDGE_MAX_TOKENS. Its worst
  case counts the answer twice over as prompt, as evaluations.runner bounds it (the answer's
  tokens are estimated again as text), so the estimate's worst case is the sum of what the
  runner holds against the budget, prediction by prediction.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from billing.usage import usage_cost_micros
from evaluations.datasets import row_messages

DEFAULT_MAX_TOKENS = 256
MIN_LIKELY_TOKENS = 16
CHARS_PER_TOKEN = 4
# The judge's reply is a short JSON object ({"score", "reason"}): the runner caps it at this.
JUDGE_MAX_TOKENS = 256
JUDGE_LIKELY_TOKENS = 64


@dataclass
class Estimate:
    # Every call: predictions and judge calls.
    calls: int
    judge_calls: int
    estimate_micros: int
    worst_case_micros: int
    # [{"model", "calls", "judge_calls", "prompt_tokens", "estimate_micros",
    #   "worst_case_micros"}] in model_specs order; judge calls count to the model judged.
    per_model: list[dict] = field(default_factory=list)


def max_tokens_of(spec: Mapping[str, Any]) -> int:
    return int((spec.get("params") or {}).get("max_tokens") or DEFAULT_MAX_TOKENS)


def prediction_body(row: dict, spec: Mapping[str, Any], system_prompt: str) -> dict:
    """The chat request a prediction sends (the runner sends this, plus its stream options)."""
    params = dict(spec.get("params") or {})
    params.setdefault("max_tokens", DEFAULT_MAX_TOKENS)
    return {**params, "model": spec["model"], "messages": row_messages(row, system_prompt)}


def likely_completion_tokens(row: dict, max_tokens: int) -> int:
    expected = row.get("expected")
    if expected is None or expected == "":
        return max(1, max_tokens // 2)
    text = expected if isinstance(expected, str) else json.dumps(expected, ensure_ascii=False)
    tokens = max(MIN_LIKELY_TOKENS, -(-len(text) // CHARS_PER_TOKEN))
    return min(max_tokens, tokens)


def _cost(prices: tuple[int, int], prompt_tokens: int, completion_tokens: int) -> int:
    input_price, output_price = prices
    return usage_cost_micros(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        input_price_micros=input_price,
        output_price_micros=output_price,
    )


def _judge_prompt_tokens(
    scorer: Mapping[str, Any], row: dict, count_prompt_tokens: Callable[[dict], int]
) -> int:
    """The judge's prompt without the answer (added per case by the caller)."""
    from evaluations.scorers import judge_messages

    args = scorer.get("args") or {}
    variables = {k: v for k, v in row.items() if k != "messages"}
    body = {
        "model": args["model"],
        "messages": judge_messages(args.get("rubric", ""), variables, ""),
    }
    return count_prompt_tokens(body)


def evaluation_estimate(
    *,
    rows: Sequence[dict],
    model_specs: Sequence[Mapping[str, Any]],
    scorers: Sequence[Mapping[str, Any]],
    trials: int,
    system_prompt: str,
    prices: Mapping[str, tuple[int, int]],
    count_prompt_tokens: Callable[[dict], int],
) -> Estimate:
    """Calls and cost of rows x models x trials, plus one judge call per prediction and
    llm_judge scorer. Every model (and judge model) must be in `prices`."""
    judges = [s for s in scorers if s.get("scorer") == "llm_judge"]
    judge_prompts = [
        [_judge_prompt_tokens(judge, row, count_prompt_tokens) for row in rows] for judge in judges
    ]
    per_model = []
    for spec in model_specs:
        model_prices = prices[spec["model"]]
        max_tokens = max_tokens_of(spec)
        prompt_total = likely = worst = 0
        for row_index, row in enumerate(rows):
            prompt = count_prompt_tokens(prediction_body(row, spec, system_prompt))
            completion = likely_completion_tokens(row, max_tokens)
            prompt_total += prompt
            likely += _cost(model_prices, prompt, completion)
            worst += _cost(model_prices, prompt, max_tokens)
            for judge, prompts in zip(judges, judge_prompts, strict=True):
                judge_prices = prices[judge["args"]["model"]]
                # The answer is in the judge's prompt.
                prompt = prompts[row_index]
                likely += _cost(judge_prices, prompt + completion, JUDGE_LIKELY_TOKENS)
                worst += _cost(judge_prices, prompt + 2 * max_tokens, JUDGE_MAX_TOKENS)
        predictions = len(rows) * trials
        per_model.append(
            {
                "model": spec["model"],
                "calls": predictions * (1 + len(judges)),
                "judge_calls": predictions * len(judges),
                "prompt_tokens": prompt_total * trials,
                "estimate_micros": likely * trials,
                "worst_case_micros": worst * trials,
            }
        )
    return Estimate(
        calls=sum(m["calls"] for m in per_model),
        judge_calls=sum(m["judge_calls"] for m in per_model),
        estimate_micros=sum(m["estimate_micros"] for m in per_model),
        worst_case_micros=sum(m["worst_case_micros"] for m in per_model),
        per_model=per_model,
    )
