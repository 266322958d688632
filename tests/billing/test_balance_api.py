"""GET /v1/billing/balance: the caller's organization balance, plan, month usage and limits."""

import pytest

from billing.models import Membership
from billing.usage import settle_usage
from inference_app.accounts import api_key_create, project_create, team_add_member, team_create
from inference_app.gateway.callers import clear_caches
from tests.billing.conftest import make_org, make_report, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_caller_cache():
    clear_caches()
    yield
    clear_caches()


def key_for(org, role):
    user = make_user(organization=org, role=role)
    team = team_create(organization=org, name=f"team-{user.username}")
    team_add_member(team=team, user=user)
    project_create(team=team, name="proj")
    _, raw_key = api_key_create(user=user)
    return raw_key, f"{team.name}/proj"


def test_admin_reads_balance_plan_usage_and_limits(client):
    org = make_org(plan_code="pro", name="Acme")
    settle_usage(make_report(org, prompt_tokens=1_000, completion_tokens=500))
    raw_key, project = key_for(org, Membership.Role.ADMIN)
    response = client.get(
        "/v1/billing/balance",
        headers={"Authorization": f"Bearer {raw_key}", "OpenAI-Project": project},
    )
    assert response.status_code == 200, response.content
    body = response.json()
    org.refresh_from_db()
    assert body["object"] == "billing.balance"
    assert body["organization"] == {"slug": org.slug, "name": "Acme"}
    assert body["plan"]["code"] == "pro" and body["plan"]["allows_overage"] is True
    assert body["balance_micros"] == org.balance_micros
    assert body["balance_usd"] == f"{org.balance_micros / 1_000_000:.6f}"
    assert body["usage_this_month"]["requests"] == 1
    assert body["usage_this_month"]["cost_micros"] == org.usage_records.get().cost_micros
    assert body["limits"]["monthly_spend_cap_micros"] == org.plan.monthly_spend_cap_micros
    assert body["limits"]["user_concurrency"] == org.plan.user_concurrency


def test_member_gets_403_and_bad_key_401(client):
    org = make_org()
    raw_key, project = key_for(org, Membership.Role.MEMBER)
    response = client.get("/v1/billing/balance", headers={"Authorization": f"Bearer {raw_key}"})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    bad = client.get(
        "/v1/billing/balance", headers={"Authorization": "Bearer ys-not-a-real-key-000000"}
    )
    assert bad.status_code == 401
    assert bad.json()["error"]["code"] == "invalid_api_key"


def test_an_unexpected_failure_is_a_500_in_openai_shape(client, monkeypatch):
    """The balance endpoint goes through the API's one view wrapper: whatever fails inside is
    answered in the error shape every /v1 call uses (it was Django's HTML 500 page)."""
    from inference_app.api import billing_views

    def broken(**kwargs):
        raise RuntimeError("selector fell over")

    monkeypatch.setattr(billing_views, "_balance_payload", broken)
    org = make_org(plan_code="pro")
    raw_key, project = key_for(org, Membership.Role.ADMIN)
    response = client.get(
        "/v1/billing/balance",
        headers={"Authorization": f"Bearer {raw_key}", "OpenAI-Project": project},
    )
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "server_error"


def test_the_country_block_applies_to_the_balance_endpoint(client, settings):
    settings.BLOCKED_COUNTRIES = ["XX"]
    org = make_org(plan_code="pro")
    raw_key, project = key_for(org, Membership.Role.ADMIN)
    response = client.get(
        "/v1/billing/balance",
        headers={
            "Authorization": f"Bearer {raw_key}",
            "OpenAI-Project": project,
            "CF-IPCountry": "xx",
        },
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "unsupported_country_region_territory"
