"""The billing page over the real views: who may see and export it, and what it shows."""

from datetime import UTC, timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.shortcuts import resolve_url
from django.utils import timezone

from billing import tasks
from billing.models import Membership
from billing.quota import reserve_credits
from billing.usage import settle_usage
from tests.billing.conftest import make_org, make_report, make_user

pytestmark = pytest.mark.django_db

PAGES = ["/billing/", "/billing/usage/", "/billing/usage/export.csv"]


@pytest.fixture
def org_with_usage():
    org = make_org(plan_code="pro", name="Acme")
    now = timezone.now()
    for days_ago, model, project in [
        (3, "m-alpha", "p1"),
        (3, "m-beta", "p2"),
        (1, "m-alpha", "p2"),
        (0, "m-beta", "p1"),
    ]:
        settle_usage(
            make_report(
                org, model=model, project=project, created_at=now - timedelta(days=days_ago)
            )
        )
    for days_ago in (3, 1):
        tasks.rollup_usage_day((now - timedelta(days=days_ago)).astimezone(UTC).date().isoformat())
    return org


@pytest.mark.parametrize("url", PAGES)
def test_anonymous_users_get_the_sign_in_page(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(resolve_url(settings.LOGIN_URL) + "?next=")


@pytest.mark.parametrize("url", PAGES)
def test_a_member_who_is_not_an_admin_gets_403(client, org_with_usage, url):
    client.force_login(make_user(organization=org_with_usage, role=Membership.Role.MEMBER))
    assert client.get(url).status_code == 403
    assert client.get(url, {"org": org_with_usage.slug}).status_code == 403


@pytest.mark.parametrize("url", PAGES)
def test_an_admin_of_another_organization_gets_403(client, org_with_usage, url):
    other_admin = make_user(organization=make_org(name="Other"))
    client.force_login(other_admin)
    response = client.get(url, {"org": org_with_usage.slug})
    assert response.status_code == 403
    assert b"Acme" not in response.content
    # Without ?org= they see their own organization, never this one.
    own = client.get(url)
    # (Names that no random token on the page can spell by chance: "p2" once matched a CSRF
    # token.)
    assert own.status_code == 200 and b"Acme" not in own.content
    assert b"m-alpha" not in own.content and b"m-beta" not in own.content


def test_admin_sees_balance_plan_usage_card_and_upcoming_charges(client, org_with_usage):
    client.force_login(make_user(organization=org_with_usage))
    response = client.get("/billing/")
    assert response.status_code == 200
    html = response.content.decode()
    org_with_usage.refresh_from_db()
    assert response.context["summary"].balance_micros == org_with_usage.balance_micros
    assert "Credit balance" in html and "Pro" in html and "Upcoming charges" in html
    assert 'href="/billing/usage/"' in html and "View usage" in html
    assert "Pro plan credits" in html  # the grant and its expiry
    assert response.context["summary"].requests_this_month == sum(
        1 for r in org_with_usage.usage_records.all() if r.created_at.month == timezone.now().month
    )


def test_usage_reads_rollups_and_today_and_groups_by_project(client, org_with_usage):
    client.force_login(make_user(organization=org_with_usage))
    by_model = client.get("/billing/usage/")
    assert by_model.status_code == 200
    assert {g["key"] for g in by_model.context["chart"]["groups"]} == {"m-alpha", "m-beta"}
    assert by_model.context["totals"]["requests"] == 4
    assert b'id="usage-cost-chart"' in by_model.content and b"chart.umd.min.js" in by_model.content
    by_project = client.get("/billing/usage/", {"group_by": "project", "model": "m-alpha"})
    assert {g["key"] for g in by_project.context["chart"]["groups"]} == {"team-a/p1", "team-a/p2"}
    assert by_project.context["totals"]["requests"] == 2


def test_htmx_filter_change_renders_only_the_results_partial(client, org_with_usage):
    client.force_login(make_user(organization=org_with_usage))
    response = client.get(
        "/billing/usage/", {"group_by": "project"}, headers={"HX-Request": "true"}
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="usage-results">')
    assert "<html" not in html and "usage-chart-data" in html


def test_htmx_range_change_also_refreshes_the_model_and_project_choices(client, org_with_usage):
    client.force_login(make_user(organization=org_with_usage))
    today = timezone.now().astimezone(UTC).date().isoformat()
    response = client.get(
        "/billing/usage/", {"start": today, "end": today}, headers={"HX-Request": "true"}
    )
    html = response.content.decode()
    # Only today's usage (m-beta in p1) is offered, swapped into the form out of band.
    choices = html[html.index('<div id="usage-choices"') :]
    assert 'hx-swap-oob="true"' in choices.split(">", 1)[0]
    assert '<option value="m-beta">' in choices and "m-alpha" not in choices
    assert '<option value="team-a/p1">' in choices and "team-a/p2" not in choices
    full = client.get("/billing/usage/").content.decode()  # the whole page: no out-of-band copy
    assert full.count('id="usage-choices"') == 1 and "hx-swap-oob" not in full
    assert '<option value="m-alpha">' in full


def test_invalid_range_falls_back_to_defaults_with_a_message(client, org_with_usage):
    client.force_login(make_user(organization=org_with_usage))
    response = client.get("/billing/usage/", {"start": "2026-05-01", "end": "2026-04-01"})
    assert response.status_code == 200
    assert "start date is after the end date" in response.content.decode()


def test_csv_export_matches_the_table(client, org_with_usage):
    client.force_login(make_user(organization=org_with_usage))
    response = client.get("/billing/usage/export.csv", {"group_by": "model"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    lines = response.content.decode().strip().splitlines()
    assert lines[0] == "day,model,requests,prompt_tokens,completion_tokens,cost_usd"
    assert len(lines) == 1 + 4
    total_cost = sum(r.cost_micros for r in org_with_usage.usage_records.all())
    assert sum(Decimal(line.split(",")[-1]) for line in lines[1:]) * 1_000_000 == total_cost


def test_an_admin_of_several_organizations_picks_one_with_org(client, org_with_usage):
    admin = make_user(organization=org_with_usage)
    second = make_org(name="Zeta")
    Membership.objects.create(organization=second, user=admin, role=Membership.Role.ADMIN)
    client.force_login(admin)
    response = client.get("/billing/", {"org": second.slug})
    assert response.context["organization"].pk == second.pk
    assert f'value="{second.slug}" selected' in response.content.decode()
    assert f"?org={second.slug}" in response.content.decode()  # links keep the choice


def test_upcoming_charges_project_the_month_at_its_spend_rate():
    from datetime import UTC, datetime

    from billing.models import MICROS_PER_DOLLAR
    from billing.selectors import upcoming_charges

    org = make_org(plan_code="pro")
    org.overage_month = datetime(2026, 11, 1).date()
    org.overage_micros = 10 * MICROS_PER_DOLLAR
    # A third of November gone, 30 USD spent: 60 USD more expected, 5 USD of credits left.
    now = datetime(2026, 11, 11, tzinfo=UTC)
    upcoming = upcoming_charges(
        organization=org,
        spend_so_far_micros=30 * MICROS_PER_DOLLAR,
        credits_micros=5 * MICROS_PER_DOLLAR,
        now=now,
    )
    assert upcoming.overage_so_far_micros == 10 * MICROS_PER_DOLLAR
    assert upcoming.projected_overage_micros == (10 + 60 - 5) * MICROS_PER_DOLLAR
    # The cap bounds the projection; plans without overage have no upcoming charges.
    org.plan.monthly_spend_cap_micros = 20 * MICROS_PER_DOLLAR
    capped = upcoming_charges(
        organization=org, spend_so_far_micros=30 * MICROS_PER_DOLLAR, credits_micros=0, now=now
    )
    assert capped.projected_overage_micros == 20 * MICROS_PER_DOLLAR
    assert (
        upcoming_charges(organization=make_org(), spend_so_far_micros=1, credits_micros=0, now=now)
        is None
    )


def test_lost_requests_are_shown_on_the_usage_page(client, org_with_usage):
    """A request whose gateway process died is settled as `lost`: the page says so."""
    client.force_login(make_user(organization=org_with_usage))
    assert b'data-testid="lost-requests"' not in client.get("/billing/usage/").content
    lost = make_report(org_with_usage, status="lost", completion_tokens=0)
    # The sweep settles a lost request only while its hold is there.
    reserve_credits(
        organization_id=org_with_usage.pk, request_id=lost.request_id, amount_micros=10**6
    )
    settle_usage(lost)
    page = client.get("/billing/usage/")
    assert page.context["lost"]["count"] == 1
    assert b'data-testid="lost-requests"' in page.content
    assert b"1 request in this range was <strong>lost</strong>" in page.content
