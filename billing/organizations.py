"""Creating organizations and managing who belongs to them."""

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from billing.credits import grant_credits
from billing.models import Membership, Organization, Plan
from billing.plans import ensure_plans


def organization_create(*, name: str, slug: str, plan_code: str = Plan.Code.FREE) -> Organization:
    """A new organization on `plan_code`, with the plan's included credits granted."""
    ensure_plans()
    plan = Plan.objects.get(code=plan_code)
    with transaction.atomic():
        org = Organization.objects.create(name=name, slug=slug, plan=plan)
        if plan.included_credits_micros:
            grant_credits(
                organization=org,
                amount_micros=plan.included_credits_micros,
                kind="plan",
                expires_at=timezone.now() + timedelta(days=plan.credit_validity_days),
                note=f"{plan.name} plan credits",
            )
    org.refresh_from_db()
    return org


def membership_set(*, organization: Organization, user, role: str) -> Membership:
    membership, _ = Membership.objects.update_or_create(
        organization=organization, user=user, defaults={"role": role}
    )
    return membership


def is_org_admin(*, user, organization_id: int) -> bool:
    return Membership.objects.filter(
        organization_id=organization_id, user=user, role=Membership.Role.ADMIN
    ).exists()
