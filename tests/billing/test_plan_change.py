"""Self-serve plan changes (billing.plan_changes) and their pages: upgrades at once with credits,
Pro's spend cap within limits, downgrades at the month's end, members refused."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from billing import tasks
from billing.ledger import ledger_sum_micros
from billing.models import (
    MICROS_PER_DOLLAR,
    CreditGrant,
    LedgerEntry,
    Membership,
    Organization,
    PlanChange,
)
from billing.organizations import organization_change_plan
from billing.plan_changes import (
    NotAnAdmin,
    PlanChangeRefused,
    plan_change_cancel,
    plan_change_request,
    plan_offers,
    spend_cap_set,
)
from billing.quota import spendable_micros
from tests.billing.conftest import make_org, make_user

pytestmark = pytest.mark.django_db

USD = MICROS_PER_DOLLAR


def _state(org):
    org = Organization.objects.select_related("plan").get(pk=org.pk)
    return (
        org.plan.code,
        org.spend_cap_micros,
        org.balance_micros,
        LedgerEntry.objects.filter(organization=org).count(),
        PlanChange.objects.filter(organization=org).count(),
        CreditGrant.objects.filter(organization=org).count(),
    )


def _next_month_start(now):
    first = now.astimezone(UTC).date().replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return datetime(following.year, following.month, 1, tzinfo=UTC)


def test_upgrade_takes_effect_at_once_with_pro_credits_ledger_and_history(free_org):
    admin = make_user(organization=free_org)
    before = free_org.balance_micros
    change = plan_change_request(organization=free_org, plan_code="pro", user=admin)
    free_org.refresh_from_db()
    assert free_org.plan.code == "pro"
    assert (change.status, change.from_plan.code, change.to_plan.code, change.changed_by) == (
        "applied",
        "free",
        "pro",
        admin,
    )
    grant = CreditGrant.objects.filter(organization=free_org).order_by("-id").first()
    assert (grant.kind, grant.amount_micros) == ("plan", 20 * USD)
    assert free_org.balance_micros == before + 20 * USD
    notes = list(
        LedgerEntry.objects.filter(organization=free_org).values_list("note", "amount_micros")
    )
    assert ("Plan changed: Free to Pro (no fee)", 0) in notes
    assert ("Pro plan credits", 20 * USD) in notes
    assert ledger_sum_micros(organization_id=free_org.pk) == free_org.balance_micros
    # The history shows creation then the upgrade, newest first.
    assert [
        (c.from_plan and c.from_plan.code, c.to_plan.code) for c in free_org.plan_changes.all()
    ] == [
        ("free", "pro"),
        (None, "free"),
    ]


def test_spend_cap_within_limits_is_set_and_used_by_reservations(pro_org):
    admin = make_user(organization=pro_org)
    change = spend_cap_set(organization=pro_org, cap_micros=50 * USD, user=admin)
    pro_org.refresh_from_db()
    assert pro_org.spend_cap_micros == 50 * USD
    assert pro_org.monthly_spend_cap_micros == 50 * USD
    assert change.spend_cap_micros == 50 * USD
    assert LedgerEntry.objects.filter(
        organization=pro_org, amount_micros=0, note="Monthly spend cap $500.00 to $50.00"
    ).exists()
    # What may be held now: the Pro credits plus the chosen cap, not the plan's $500.
    assert spendable_micros(organization=pro_org, now=timezone.now()) == 20 * USD + 50 * USD


@pytest.mark.parametrize("cap", [0, USD - 1, 500 * USD + 1, 10_000 * USD])
def test_spend_cap_outside_limits_is_refused_and_nothing_changes(pro_org, cap):
    admin = make_user(organization=pro_org)
    before = _state(pro_org)
    with pytest.raises(PlanChangeRefused, match=r"between \$1.00 and \$500.00"):
        spend_cap_set(organization=pro_org, cap_micros=cap, user=admin)
    assert _state(pro_org) == before


def test_free_plan_has_no_adjustable_cap(free_org):
    admin = make_user(organization=free_org)
    before = _state(free_org)
    with pytest.raises(PlanChangeRefused, match="no adjustable spend cap"):
        spend_cap_set(organization=free_org, cap_micros=10 * USD, user=admin)
    assert _state(free_org) == before


def test_downgrade_is_scheduled_then_applied_by_the_month_end_job(pro_org, monkeypatch):
    admin = make_user(organization=pro_org)
    spend_cap_set(organization=pro_org, cap_micros=100 * USD, user=admin)
    change = plan_change_request(organization=pro_org, plan_code="free", user=admin)
    pro_org.refresh_from_db()
    now = timezone.now()
    assert change.status == "scheduled"
    assert change.effective_at == _next_month_start(now)
    assert pro_org.plan.code == "pro"  # nothing changes before the period ends
    assert LedgerEntry.objects.filter(
        organization=pro_org, note__startswith="Plan change scheduled: Pro to Free"
    ).exists()
    # A second identical request is refused; nothing more is written.
    before = _state(pro_org)
    with pytest.raises(PlanChangeRefused, match="already scheduled"):
        plan_change_request(organization=pro_org, plan_code="free", user=admin)
    assert _state(pro_org) == before

    # The day's run before the month ends applies nothing.
    assert tasks.apply_scheduled_plan_changes() == 0
    # The month-end job, on the 1st of next month.
    later = _next_month_start(now) + timedelta(minutes=17)
    monkeypatch.setattr(timezone, "now", lambda: later)
    grants_before = CreditGrant.objects.filter(organization=pro_org).count()
    tasks.issue_last_month_invoices()
    pro_org.refresh_from_db()
    change.refresh_from_db()
    assert (pro_org.plan.code, pro_org.spend_cap_micros, change.status) == ("free", None, "applied")
    assert CreditGrant.objects.filter(organization=pro_org).count() == grants_before  # no credits
    assert (
        LedgerEntry.objects.filter(
            organization=pro_org, amount_micros=0, note__startswith="Plan changed: Pro to Free"
        ).count()
        == 1
    )
    # Running again applies nothing twice.
    tasks.issue_last_month_invoices()
    assert tasks.apply_scheduled_plan_changes() == 0
    assert (
        LedgerEntry.objects.filter(
            organization=pro_org, note__startswith="Plan changed: Pro to Free"
        ).count()
        == 1
    )
    assert (
        ledger_sum_micros(organization_id=pro_org.pk)
        == Organization.objects.get(pk=pro_org.pk).balance_micros
    )


def test_a_scheduled_downgrade_can_be_cancelled(pro_org):
    admin = make_user(organization=pro_org)
    plan_change_request(organization=pro_org, plan_code="free", user=admin)
    cancelled = plan_change_cancel(organization=pro_org, user=admin)
    assert cancelled.status == "cancelled"
    assert tasks.plan_changes_apply_due(now=_next_month_start(timezone.now())) == 0
    pro_org.refresh_from_db()
    assert pro_org.plan.code == "pro"


def test_an_operator_change_cancels_a_scheduled_downgrade(pro_org):
    admin = make_user(organization=pro_org)
    plan_change_request(organization=pro_org, plan_code="free", user=admin)
    organization_change_plan(organization=pro_org, plan_code="enterprise", note="contract")
    assert not PlanChange.objects.filter(organization=pro_org, status="scheduled").exists()


def test_a_member_is_refused_and_nothing_changes(free_org):
    member = make_user(organization=free_org, role=Membership.Role.MEMBER)
    outsider = make_user(organization=make_org())
    before = _state(free_org)
    for user in (member, outsider):
        with pytest.raises(NotAnAdmin):
            plan_change_request(organization=free_org, plan_code="pro", user=user)
    assert _state(free_org) == before


@pytest.mark.parametrize("code", ["academic", "enterprise"])
def test_academic_and_enterprise_are_not_offered(free_org, code):
    admin = make_user(organization=free_org)
    assert [offer.plan.code for offer in plan_offers(organization=free_org)] == ["pro"]
    before = _state(free_org)
    with pytest.raises(PlanChangeRefused, match="arranged with us"):
        plan_change_request(organization=free_org, plan_code=code, user=admin)
    assert _state(free_org) == before
    # And an organization an operator put on them cannot move itself off.
    other = make_org(plan_code=code)
    other_admin = make_user(organization=other)
    assert plan_offers(organization=other) == []
    with pytest.raises(PlanChangeRefused):
        plan_change_request(organization=other, plan_code="free", user=other_admin)


# --- the pages ---------------------------------------------------------------------------------
def test_admin_upgrades_through_the_confirmation_page(client, free_org):
    admin = make_user(organization=free_org)
    client.force_login(admin)
    page = client.get("/billing/plan/")
    assert page.status_code == 200
    assert b'data-testid="choose-pro"' in page.content
    confirm = client.get("/billing/plan/change/", {"plan": "pro", "org": free_org.slug})
    assert confirm.status_code == 200
    html = confirm.content.decode()
    assert 'data-testid="charged-now">$0.00<' in html
    assert "$20.00, valid 30 days" in html
    free_org.refresh_from_db()
    assert free_org.plan.code == "free"  # the confirmation page changes nothing
    done = client.post("/billing/plan/change/", {"plan": "pro", "org": free_org.slug})
    assert done.status_code == 302
    free_org.refresh_from_db()
    assert free_org.plan.code == "pro"
    page = client.get(done["Location"])
    assert b"You are now on the Pro plan." in page.content


def test_cap_outside_limits_through_the_page_shows_the_message(client, pro_org):
    client.force_login(make_user(organization=pro_org))
    before = _state(pro_org)
    response = client.post(
        "/billing/plan/cap/", {"cap_usd": "900", "org": pro_org.slug}, follow=True
    )
    assert b"Choose a monthly spend cap between $1.00 and $500.00." in response.content
    assert _state(pro_org) == before
    client.post("/billing/plan/cap/", {"cap_usd": "250.50", "org": pro_org.slug})
    pro_org.refresh_from_db()
    assert pro_org.spend_cap_micros == 250_500_000


def test_member_sees_the_plan_without_buttons_and_posts_are_refused(client, free_org):
    client.force_login(make_user(organization=free_org, role=Membership.Role.MEMBER))
    page = client.get("/billing/plan/")
    assert page.status_code == 200
    assert b'data-testid="current-plan">Free<' in page.content
    assert b"choose-pro" not in page.content
    assert "Only the organization's admins can change its plan." in page.content.decode()
    before = _state(free_org)
    assert client.post("/billing/plan/change/", {"plan": "pro"}).status_code == 403
    assert client.get("/billing/plan/change/", {"plan": "pro"}).status_code == 403
    assert client.post("/billing/plan/cap/", {"cap_usd": "10"}).status_code == 403
    assert client.post("/billing/plan/cancel/").status_code == 403
    assert _state(free_org) == before
    # The admin-only billing page stays admin-only.
    assert client.get("/billing/").status_code == 403


def test_outsiders_cannot_see_another_organizations_plan(client, free_org):
    client.force_login(make_user(organization=make_org(name="Elsewhere")))
    assert client.get("/billing/plan/", {"org": free_org.slug}).status_code == 403


def test_out_of_credits_banner_on_billing(client, free_org):
    client.force_login(make_user(organization=free_org))
    assert b'data-testid="out-of-credits"' not in client.get("/billing/").content
    Organization.objects.filter(pk=free_org.pk).update(reserved_micros=free_org.balance_micros)
    page = client.get("/billing/").content.decode()
    assert 'data-testid="out-of-credits"' in page
    assert f'href="/billing/plan/?org={free_org.slug}"' in page


def test_a_second_upgrade_finds_pro_under_the_lock_and_grants_nothing_more(free_org):
    admin = make_user(organization=free_org)
    stale = Organization.objects.select_related("plan").get(pk=free_org.pk)  # read before
    plan_change_request(organization=free_org, plan_code="pro", user=admin)
    before = _state(free_org)
    # A second tab's request, made from the stale page (still Free), is refused by the locked read.
    with pytest.raises(PlanChangeRefused, match="already on the Pro plan"):
        plan_change_request(organization=stale, plan_code="pro", user=admin)
    assert _state(free_org) == before
    assert CreditGrant.objects.filter(organization=free_org, note="Pro plan credits").count() == 1
