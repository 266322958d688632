"""One money rule: billing.money.format_usd (the server) and static/js/money.js (the browser)
give the same text for the same table of micro-dollar amounts, and that text is the rule's."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from django.template import Context, Template

from billing.money import format_usd

MONEY_JS = Path(__file__).resolve().parents[2] / "static" / "js" / "money.js"

# (micro-dollars, text): cents for zero and a cent or more (halves away from zero), every
# micro-dollar digit below a cent, thousands separated, the sign before the dollar sign.
TABLE = [
    (0, "$0.00"),
    (1, "$0.000001"),
    (5, "$0.000005"),
    (50, "$0.00005"),
    (1_602, "$0.001602"),
    (9_999, "$0.009999"),
    (10_000, "$0.01"),
    (14_999, "$0.01"),
    (15_000, "$0.02"),
    (25_000, "$0.03"),  # half away from zero, not to even
    (125_000, "$0.13"),
    (994_999, "$0.99"),
    (995_000, "$1.00"),
    (5_000_000, "$5.00"),
    (18_500_000, "$18.50"),
    (1_234_567_890, "$1,234.57"),
    (100_000_000_000, "$100,000.00"),
    (-7, "-$0.000007"),
    (-25_000, "-$0.03"),
    (-1_234_567_890, "-$1,234.57"),
]


@pytest.mark.parametrize("micros,text", TABLE)
def test_server_rule(micros, text):
    assert format_usd(micros) == text


def test_template_filter_is_the_same_rule():
    template = Template("{% load billing_money %}{{ a|usd }} {{ b|usd }} {{ c|usd }}")
    assert template.render(Context({"a": 1_602, "b": 25_000, "c": None})) == "$0.001602 $0.03 $0.00"


def run_money_js(values: list[int]) -> list[str]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (the browser test runs money.js in Chromium)")
    script = (
        f"const m = require({json.dumps(str(MONEY_JS))});"
        f"process.stdout.write(JSON.stringify({json.dumps(values)}.map(m.usd)));"
    )
    out = subprocess.run(
        [node, "-e", script], capture_output=True, text=True, timeout=30, check=True
    )
    return json.loads(out.stdout)


def test_browser_rule_agrees_with_the_server_on_the_table():
    values = [micros for micros, _ in TABLE]
    assert run_money_js(values) == [format_usd(v) for v in values] == [t for _, t in TABLE]


def test_browser_rule_agrees_on_every_amount_around_the_cent():
    values = (
        list(range(0, 30_001, 7)) + [-v for v in range(0, 30_001, 13)] + [10**k for k in range(13)]
    )
    assert run_money_js(values) == [format_usd(v) for v in values]
