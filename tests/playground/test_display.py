from decimal import Decimal
from types import SimpleNamespace

import pytest

from playground.chat_metrics import RunMetrics
from playground.chat_requests import PlaygroundRequestError, chat_body_build
from playground.templatetags.yardstick import params_label, tokens_compact, usd_micros


@pytest.mark.parametrize(
    ("value", "label"), [(161_000, "161K"), (128_000, "128K"), (8192, "8K"), (512, "512")]
)
def test_context_window_is_compact(value, label):
    assert tokens_compact(value) == label


@pytest.mark.parametrize(
    ("active", "total", "label"),
    [
        ("37", "680", "37B - 680B (Active - Total)"),
        (None, "8", "8B (Total)"),
        ("3.8", "3.8", "3.8B (Total)"),
        (None, "0.135", "135M (Total)"),
    ],
)
def test_parameters_label(active, total, label):
    model = SimpleNamespace(
        active_params_b=Decimal(active) if active else None, total_params_b=Decimal(total)
    )
    assert params_label(model) == label


@pytest.mark.parametrize(
    ("micros", "text"),
    [(1_350_000, "$1.35"), (80_000, "$0.08"), (10_000, "$0.01"), (1, "$0.000001")],
)
def test_usd_micros(micros, text):
    assert usd_micros(micros) == text


def test_body_is_streaming_with_usage_and_only_known_params():
    body = chat_body_build(
        model="m",
        messages=[{"role": "system", "content": "s"}, {"role": "user", "content": "hi"}],
        params={
            "temperature": "0.5",
            "max_tokens": 10,
            "seed": "",
            "stop": ["\n\n", ""],
            "n": 5,
            "tools": [],
        },
    )
    assert body == {
        "model": "m",
        "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "hi"}],
        "temperature": 0.5,
        "max_tokens": 10,
        "stop": ["\n\n"],
        "stream": True,
        "stream_options": {"include_usage": True},
    }


@pytest.mark.parametrize(
    "kwargs",
    [
        {"model": "", "messages": [{"role": "user", "content": "x"}], "params": {}},
        {"model": "m", "messages": [], "params": {}},
        {"model": "m", "messages": [{"role": "tool", "content": "x"}], "params": {}},
        {"model": "m", "messages": [{"role": "user", "content": "x"}], "params": {"top_p": "abc"}},
        {
            "model": "m",
            "messages": [{"role": "user", "content": "x"}],
            "params": {"stop": list("abcde")},
        },
    ],
)
def test_bad_run_messages_are_refused(kwargs):
    with pytest.raises(PlaygroundRequestError):
        chat_body_build(**kwargs)


def test_run_metrics_cost_and_rate():
    metrics = RunMetrics(input_price_micros=1_000_000, output_price_micros=2_000_000)
    metrics.started -= 1.0
    metrics.on_delta()
    metrics.first_token_at -= 0.5  # first token 0.5 s after the start
    for _ in range(10):
        metrics.on_delta()
    assert metrics.tokens == 11
    assert 400 <= metrics.ttft_ms <= 600
    assert metrics.tokens_per_s() > 0
    metrics.on_usage({"prompt_tokens": 500_000, "completion_tokens": 250_000})
    # 0.5M input at $1/M + 0.25M output at $2/M = $1.00
    assert metrics.cost_micros() == 1_000_000
