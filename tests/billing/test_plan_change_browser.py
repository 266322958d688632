"""Self-serve plans in Debian's Chromium: an organization admin upgrades Free -> Pro through the
confirmation page (the ledger and the plan history checked after) and sets Pro's cap; a member
sees the plan with no button to change it, and a POST of theirs is refused. At 1440 and 390."""

from datetime import UTC, datetime

import pytest

from billing.models import LedgerEntry, Membership, PlanChange
from billing.money import format_usd
from tests.billing.conftest import make_org, make_user
from tests.billing.test_money_format import TABLE

pytestmark = pytest.mark.browser

LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture
def plan_world(transactional_db):
    org = make_org(plan_code="free", name="Acme Research")
    admin = make_user(organization=org, role=Membership.Role.ADMIN, username="plan-admin")
    member = make_user(organization=org, role=Membership.Role.MEMBER, username="plan-member")
    return org, admin, member


def _sign_in(page, url, username, next_path):
    page.goto(f"{url}/accounts/login/?next={next_path}")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "pw-123456789")
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}{next_path}")


def _fits(page, width):
    assert page.evaluate("() => document.documentElement.scrollWidth") <= width


@pytest.mark.parametrize("width", [1440, 390])
def test_admin_upgrades_to_pro_and_a_member_is_refused(
    plan_world, live_server, chromium_executable, artifacts_dir, width
):
    from playwright.sync_api import expect, sync_playwright

    org, admin, member = plan_world
    today = datetime.now(UTC).date().isoformat()
    balance_before = org.balance_micros
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_executable, args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": width, "height": 900})
        errors = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        try:
            _sign_in(page, live_server.url, "plan-admin", "/billing/")
            # The server's and the browser's money rules agree on the same table.
            page.add_script_tag(url=f"{live_server.url}/static/js/money.js")
            shown = page.evaluate(
                "(values) => values.map(window.Yardstick.money.usd)", [m for m, _ in TABLE]
            )
            assert shown == [format_usd(m) for m, _ in TABLE]
            # Held for requests in flight: explained on keyboard focus too.
            page.locator(".billing-tip").focus()
            expect(page.get_by_role("tooltip")).to_be_visible()
            _fits(page, width)
            page.screenshot(path=str(artifacts_dir / f"billing-home-tip-{width}.png"))
            page.get_by_test_id("change-plan").click()
            page.wait_for_url(f"{live_server.url}/billing/plan/?org={org.slug}")
            expect(page.get_by_test_id("current-plan")).to_have_text("Free")
            expect(page.get_by_test_id("choose-academic")).to_have_count(0)
            expect(page.get_by_test_id("choose-enterprise")).to_have_count(0)
            _fits(page, width)
            page.screenshot(path=str(artifacts_dir / f"billing-plans-{width}.png"), full_page=True)

            page.get_by_test_id("choose-pro").click()
            expect(page.get_by_test_id("plan-confirm")).to_be_visible()
            expect(page.get_by_test_id("charged-now")).to_have_text("$0.00")
            expect(page.get_by_test_id("credits-granted")).to_have_text("$20.00, valid 30 days")
            _fits(page, width)
            page.screenshot(
                path=str(artifacts_dir / f"billing-plan-confirm-{width}.png"), full_page=True
            )
            page.get_by_test_id("confirm-change").click()
            expect(page.get_by_text("You are now on the Pro plan.")).to_be_visible()
            expect(page.get_by_test_id("current-plan")).to_have_text("Pro")
            history = page.get_by_test_id("plan-history")
            expect(history.locator("tbody tr").first).to_contain_text("Free → Pro")
            expect(history.locator("tbody tr").first).to_contain_text("plan-admin")

            # Pro's cap: outside the plan's limits the server says so (the field's own limits
            # are lifted to reach it), within them it is set.
            page.locator("#cap-usd").evaluate("el => el.removeAttribute('max')")
            page.fill("#cap-usd", "900")
            page.get_by_role("button", name="Set cap").click()
            expect(
                page.get_by_text("Choose a monthly spend cap between $1.00 and $500.00.")
            ).to_be_visible()
            expect(page.get_by_test_id("spend-cap")).to_have_text("$500.00")
            page.fill("#cap-usd", "120")
            page.get_by_role("button", name="Set cap").click()
            expect(page.get_by_test_id("spend-cap")).to_have_text("$120.00")
            _fits(page, width)
            page.screenshot(
                path=str(artifacts_dir / f"billing-plans-pro-{width}.png"), full_page=True
            )
            # Usage: filters in the URL, hourly for a day, the latest requests listed.
            page.goto(f"{live_server.url}/billing/usage/?start={today}&end={today}")
            page.wait_for_function("() => window.Chart && Chart.getChart('usage-cost-chart')")
            expect(page.get_by_test_id("cost-chart-caption")).to_have_text("Hourly cost by model")
            assert (
                page.evaluate("() => Chart.getChart('usage-cost-chart').data.labels.length") == 24
            )
            expect(page.get_by_test_id("activity")).to_contain_text("No requests yet.")
            _fits(page, width)
            page.screenshot(path=str(artifacts_dir / f"billing-usage-{width}.png"), full_page=True)
            assert errors == []

            # The member: the plan, no button; their POST (with a valid CSRF token) is refused.
            context = browser.new_context(viewport={"width": width, "height": 900})
            member_page = context.new_page()
            _sign_in(member_page, live_server.url, "plan-member", "/billing/plan/")
            expect(member_page.get_by_test_id("current-plan")).to_have_text("Pro")
            expect(member_page.get_by_test_id("member-note")).to_be_visible()
            expect(member_page.get_by_test_id("choose-free")).to_have_count(0)
            expect(member_page.locator("#cap-usd")).to_have_count(0)
            _fits(member_page, width)
            member_page.screenshot(
                path=str(artifacts_dir / f"billing-plans-member-{width}.png"), full_page=True
            )
            token = next(c["value"] for c in context.cookies() if c["name"] == "csrftoken")
            response = context.request.post(
                f"{live_server.url}/billing/plan/change/",
                form={"plan": "free", "org": org.slug},
                headers={"X-CSRFToken": token, "Referer": f"{live_server.url}/billing/plan/"},
            )
            assert response.status == 403
            response = context.request.post(
                f"{live_server.url}/billing/plan/cap/",
                form={"cap_usd": "5", "org": org.slug},
                headers={"X-CSRFToken": token, "Referer": f"{live_server.url}/billing/plan/"},
            )
            assert response.status == 403
        finally:
            browser.close()

    org.refresh_from_db()
    assert (org.plan.code, org.spend_cap_micros) == ("pro", 120_000_000)
    assert org.balance_micros == balance_before + 20_000_000
    changes = list(PlanChange.objects.filter(organization=org).order_by("id"))
    assert [(c.from_plan and c.from_plan.code, c.to_plan.code, c.status) for c in changes] == [
        (None, "free", "applied"),
        ("free", "pro", "applied"),
        ("pro", "pro", "applied"),  # the cap
    ]
    assert changes[1].changed_by == admin and changes[2].spend_cap_micros == 120_000_000
    assert not PlanChange.objects.filter(organization=org, status="scheduled").exists()
    notes = list(
        LedgerEntry.objects.filter(organization=org)
        .order_by("id")
        .values_list("note", "amount_micros")
    )
    assert notes[-3:] == [
        ("Plan changed: Free to Pro (no fee)", 0),
        ("Pro plan credits", 20_000_000),
        ("Monthly spend cap $500.00 to $120.00", 0),
    ]
    assert member  # refused above: nothing of theirs is in the history
    assert not PlanChange.objects.filter(changed_by=member).exists()
