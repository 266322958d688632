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


# --- the usage page: hourly buckets for short ranges, the latest requests ----------------------
@pytest.fixture
def usage_org(db):
    from datetime import UTC, datetime, timedelta

    from django.utils import timezone

    from billing.usage import settle_usage
    from tests.billing.conftest import make_org, make_report, make_user

    org = make_org(plan_code="pro", name="Hourly")
    today = timezone.now().astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    start = datetime(today.year, today.month, today.day, tzinfo=UTC)
    for i in range(25):
        settle_usage(
            make_report(
                org,
                request_id=f"req-hourly-{i:02d}",
                created_at=start + timedelta(minutes=5 * i),  # 00:00 .. 02:00 today
                model="m-old" if i < 5 else "m-new",
            )
        )
    return org, make_user(organization=org), start


def test_two_days_or_less_are_drawn_by_the_hour(client, usage_org):
    from django.utils import timezone

    org, admin, start = usage_org
    client.force_login(admin)
    day = start.date().isoformat()
    response = client.get("/billing/usage/", {"start": day, "end": day})
    chart = response.context["chart"]
    assert chart["bucket"] == "hour" and len(chart["labels"]) == 24
    assert chart["labels"][0].endswith("00:00")
    costs = {group["key"]: group["cost"] for group in chart["groups"]}
    # 12 requests in hour 0 (00:00..00:55), 12 in hour 1, 1 at 02:00; the first 5 on m-old.
    per_request = response.context["activity"][0].cost_micros
    assert costs["m-old"][0] == 5 * per_request
    assert costs["m-new"][:3] == [7 * per_request, 12 * per_request, per_request]
    assert b"Hourly cost by model" in response.content
    # A 30-day range stays daily.
    response = client.get("/billing/usage/")
    assert response.context["chart"]["bucket"] == "day"
    assert len(response.context["chart"]["labels"]) == 30
    assert b"Daily cost by model" in response.content
    assert timezone.now()  # (the clock is real: today's rows are raw, not rolled up)


def test_the_latest_twenty_requests_newest_first(client, usage_org):
    org, admin, _ = usage_org
    client.force_login(admin)
    response = client.get("/billing/usage/")
    activity = response.context["activity"]
    assert [row.request_id for row in activity] == [f"req-hourly-{i:02d}" for i in range(24, 4, -1)]
    html = response.content.decode()
    assert 'data-testid="activity"' in html
    assert html.count("<td>m-new</td>") >= 20
