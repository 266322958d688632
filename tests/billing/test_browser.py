"""The billing page in Debian's Chromium: an admin signs in, sees the balance, opens the usage
history, the chart library loads and draws; switching the grouping re-draws through htmx."""

from datetime import UTC, timedelta

import pytest
from django.utils import timezone

from billing import tasks
from billing.models import Membership
from billing.money import format_usd
from billing.usage import settle_usage
from tests.billing.conftest import make_org, make_report, make_user

pytestmark = pytest.mark.browser

LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture
def billing_world(transactional_db):
    org = make_org(plan_code="pro", name="Acme Research")
    now = timezone.now()
    models = [
        "meta-llama/Llama-3.1-8B-Instruct",
        "microsoft/Phi-4-mini-instruct",
        "deepseek-ai/DeepSeek-V3-0324",
    ]
    for days_ago in range(14):
        for i, model in enumerate(models):
            settle_usage(
                make_report(
                    org,
                    model=model,
                    project=["chatbot", "evals"][(days_ago + i) % 2],
                    prompt_tokens=20_000 + 3_000 * ((days_ago * 7 + i * 5) % 11),
                    completion_tokens=8_000 + 1_000 * ((days_ago + i) % 9),
                    created_at=now - timedelta(days=days_ago, minutes=5),
                )
            )
    for days_ago in range(1, 15):
        tasks.rollup_usage_day((now - timedelta(days=days_ago)).astimezone(UTC).date().isoformat())
    admin = make_user(organization=org, role=Membership.Role.ADMIN, username="billing-admin")
    org.refresh_from_db()
    return org, admin


def test_admin_sees_balance_and_usage_chart(
    billing_world, live_server, chromium_executable, artifacts_dir
):
    from playwright.sync_api import expect, sync_playwright

    org, _ = billing_world
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_executable, args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        errors = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        try:
            page.goto(f"{live_server.url}/billing/")
            assert "/accounts/login/" in page.url  # anonymous: the sign-in page
            page.fill("input[name=username]", "billing-admin")
            page.fill("input[name=password]", "pw-123456789")
            page.click("button[type=submit]")
            page.wait_for_url(f"{live_server.url}/billing/")
            expect(page.get_by_test_id("balance")).to_have_text(format_usd(org.balance_micros))
            expect(page.get_by_text("Upcoming charges")).to_be_visible()
            page.screenshot(path=str(artifacts_dir / "billing-home.png"), full_page=True)

            page.get_by_role("link", name="View usage").click()
            page.wait_for_url(f"{live_server.url}/billing/usage/")
            page.wait_for_function("() => window.Chart && Chart.getChart('usage-cost-chart')")
            drawn = page.evaluate(
                "() => { const c = Chart.getChart('usage-cost-chart');"
                " return {sets: c.data.datasets.map(d => d.label), days: c.data.labels.length,"
                " width: c.canvas.width, height: c.canvas.height} }"
            )
            assert set(drawn["sets"]) == {
                "meta-llama/Llama-3.1-8B-Instruct",
                "microsoft/Phi-4-mini-instruct",
                "deepseek-ai/DeepSeek-V3-0324",
            }
            assert drawn["days"] == 30 and drawn["width"] > 200 and drawn["height"] > 100

            # Switch to "by project": htmx swaps the results and the chart is drawn again.
            page.select_option("select[name=group_by]", "project")
            page.wait_for_function(
                "() => { const c = Chart.getChart('usage-cost-chart');"
                " return c && c.data.datasets.some(d => d.label === 'team-a/chatbot') }"
            )
            assert "group_by=project" in page.url  # hx-push-url keeps a real link
            page.screenshot(path=str(artifacts_dir / "billing.png"), full_page=True)
            assert errors == []
        finally:
            browser.close()
