"""Admin actions go through the services: grants and plan changes land in the ledger."""

import pytest
from django.contrib.auth import get_user_model

from billing.ledger import ledger_sum_micros
from billing.models import CreditGrant, LedgerEntry, PlanChange
from tests.billing.conftest import make_org

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    admin = get_user_model().objects.create_superuser(username="root", password="pw-123456789")
    client.force_login(admin)
    return client


def test_grant_credits_action_shows_a_form_then_grants(staff_client):
    org = make_org()
    url = "/admin/billing/organization/"
    page = staff_client.post(url, {"action": "grant_credits_action", "_selected_action": [org.pk]})
    assert page.status_code == 200 and b"Amount (USD)" in page.content
    done = staff_client.post(
        url,
        {
            "action": "grant_credits_action",
            "_selected_action": [org.pk],
            "apply": "1",
            "amount_usd": "12.5",
            "kind": "purchase",
            "expires_in_days": "90",
            "note": "bought",
        },
    )
    assert done.status_code == 302
    grant = CreditGrant.objects.get(organization=org, kind="purchase")
    assert grant.amount_micros == 12_500_000 and grant.note == "bought"
    org.refresh_from_db()
    assert org.balance_micros == 17_500_000 == ledger_sum_micros(organization_id=org.pk)


def test_change_plan_action_records_the_change(staff_client):
    org = make_org()
    staff_client.post(
        "/admin/billing/organization/",
        {"action": "change_plan_action", "_selected_action": [org.pk], "apply": "1", "plan": "pro"},
    )
    org.refresh_from_db()
    assert org.plan.code == "pro"
    assert PlanChange.objects.filter(organization=org, to_plan__code="pro").exists()


def test_ledger_is_read_only_in_the_admin(staff_client):
    org = make_org()
    entry = LedgerEntry.objects.get(organization=org)
    assert staff_client.get("/admin/billing/ledgerentry/").status_code == 200
    assert staff_client.get("/admin/billing/ledgerentry/add/").status_code == 403
    assert staff_client.get(f"/admin/billing/ledgerentry/{entry.pk}/delete/").status_code == 403
    staff_client.post(f"/admin/billing/ledgerentry/{entry.pk}/change/", {"amount_micros": "1"})
    entry.refresh_from_db()
    assert entry.amount_micros == 5_000_000


def test_adding_a_grant_in_the_admin_writes_the_ledger(staff_client):
    org = make_org()
    response = staff_client.post(
        "/admin/billing/creditgrant/add/",
        {"organization": org.pk, "kind": "promotion", "amount_micros": "3000000", "note": "promo"},
    )
    assert response.status_code == 302, response.content[:500]
    org.refresh_from_db()
    assert org.balance_micros == 8_000_000 == ledger_sum_micros(organization_id=org.pk)
    assert LedgerEntry.objects.filter(organization=org, kind="grant").count() == 2


def test_editing_an_organization_never_writes_its_balance(staff_client):
    # Writing the whole row would put back the balance read when the POST started, erasing
    # any charge settled meanwhile; the UPDATE must name only the fields the form changed.
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from billing.models import Organization, Plan
    from billing.usage import settle_usage
    from tests.billing.conftest import make_report

    org = make_org()
    form = staff_client.get(f"/admin/billing/organization/{org.pk}/change/")
    assert form.status_code == 200
    # A charge lands while the operator has the form open.
    settle_usage(
        make_report(org, prompt_tokens=1_000_000, completion_tokens=0, input_price_micros=1_000_000)
    )
    with CaptureQueriesContext(connection) as queries:
        response = staff_client.post(
            f"/admin/billing/organization/{org.pk}/change/",
            {
                "name": "Renamed",
                "slug": org.slug,
                "memberships-TOTAL_FORMS": "0",
                "memberships-INITIAL_FORMS": "0",
                "credit_grants-TOTAL_FORMS": "1",
                "credit_grants-INITIAL_FORMS": "1",
                "plan_changes-TOTAL_FORMS": "1",
                "plan_changes-INITIAL_FORMS": "1",
            },
        )
    assert response.status_code == 302, response.content[:2000]
    updates = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].startswith('UPDATE "billing_organization"')
    ]
    assert updates and all(
        "balance_micros" not in sql and "reserved_micros" not in sql for sql in updates
    )
    org.refresh_from_db()
    assert org.name == "Renamed"
    assert org.balance_micros == 4_000_000 == ledger_sum_micros(organization_id=org.pk)
    # Adding one in the admin grants its plan credits like organization_create does.
    added = staff_client.post(
        "/admin/billing/organization/add/",
        {"name": "New Co", "slug": "new-co", "plan": Plan.objects.get(code="pro").pk},
    )
    assert added.status_code == 302
    new = Organization.objects.get(slug="new-co")
    assert new.balance_micros == 20_000_000 == ledger_sum_micros(organization_id=new.pk)
