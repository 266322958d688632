"""`GET /v1/billing/balance`: the caller's organization balance, plan, month usage and limits.

For scripts; authenticated like every /v1 call (`Authorization: Bearer ys-...`, optionally
`OpenAI-Project: team/project` to pick the organization through one of its projects). Only an
admin of that organization may read it (others get 403, as on the billing page).

Response (amounts are integer micro-dollars, 1 USD = 1_000_000, with a decimal string beside):

    {
      "object": "billing.balance",
      "organization": {"slug": "acme", "name": "Acme"},
      "plan": {"code": "pro", "name": "Pro", "allows_overage": true},
      "balance_micros": 18500000, "balance_usd": "18.500000",
      "credits_remaining_micros": 18500000, "reserved_micros": 0,
      "usage_this_month": {"month": "2026-11", "requests": 42, "tokens": 12345,
                           "cost_micros": 1500000, "overage_micros": 0,
                           "projected_overage_micros": 0},
      "limits": {"monthly_spend_cap_micros": 500000000, "user_concurrency": 16,
                 "project_concurrency": 32}
    }
"""

from __future__ import annotations

from django.contrib.auth import get_user_model

from billing.models import Organization
from billing.money import micros_to_decimal
from billing.organizations import is_org_admin
from billing.selectors import billing_summary
from inference_app.api.exchange import ApiRequest, JsonResponse, authenticate
from inference_app.gateway import errors
from inference_app.gateway.db_threads import run_db


def _balance_payload(*, user_id: int, organization_id: int, caller_limits: dict) -> dict | None:
    user = get_user_model().objects.get(pk=user_id)
    if not is_org_admin(user=user, organization_id=organization_id):
        return None
    summary = billing_summary(organization=Organization.objects.get(pk=organization_id))
    org, plan, upcoming = summary.organization, summary.organization.plan, summary.upcoming
    return {
        "object": "billing.balance",
        "organization": {"slug": org.slug, "name": org.name},
        "plan": {"code": plan.code, "name": plan.name, "allows_overage": plan.allows_overage},
        "balance_micros": summary.balance_micros,
        "balance_usd": str(micros_to_decimal(summary.balance_micros)),
        "credits_remaining_micros": summary.credits_remaining_micros,
        "reserved_micros": summary.reserved_micros,
        "usage_this_month": {
            "month": f"{upcoming.month:%Y-%m}" if upcoming else None,
            "requests": summary.requests_this_month,
            "tokens": summary.tokens_this_month,
            "cost_micros": summary.spend_this_month_micros,
            "overage_micros": upcoming.overage_so_far_micros if upcoming else 0,
            "projected_overage_micros": upcoming.projected_overage_micros if upcoming else 0,
        },
        "limits": {
            "monthly_spend_cap_micros": plan.monthly_spend_cap_micros if plan.allows_overage else 0,
            **caller_limits,
        },
    }


async def billing_balance(request: ApiRequest) -> JsonResponse:
    caller = await authenticate(request)
    payload = await run_db(
        _balance_payload,
        user_id=caller.user_id,
        organization_id=caller.organization_id,
        caller_limits={
            "user_concurrency": caller.user_concurrency,
            "project_concurrency": caller.project_concurrency,
        },
    )
    if payload is None:
        raise errors.permission_denied("Only organization admins can read billing details")
    return JsonResponse(payload)
