"""Creating organizations and managing who belongs to them."""

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from billing.credits import grant_credits
from billing.models import CreditGrant, Membership, Organization, Plan, PlanChange
from billing.plans import ensure_plans


def organization_create(*, name: str, slug: str, plan_code: str = Plan.Code.FREE) -> Organization:
    """A new organization on `plan_code`, with the plan's included credits granted."""
    ensure_plans()
    plan = Plan.objects.get(code=plan_code)
    with transaction.atomic():
        org = Organization.objects.create(name=name, slug=slug, plan=plan)
        PlanChange.objects.create(organization=org, from_plan=None, to_plan=plan, note="created")
        _grant_plan_credits(organization=org, plan=plan)
    org.refresh_from_db()
    return org


def _grant_plan_credits(*, organization: Organization, plan: Plan, created_by=None) -> None:
    if plan.included_credits_micros:
        grant_credits(
            organization=organization,
            amount_micros=plan.included_credits_micros,
            kind=CreditGrant.Kind.PLAN,
            expires_at=timezone.now() + timedelta(days=plan.credit_validity_days),
            note=f"{plan.name} plan credits",
            created_by=created_by,
        )


def organization_change_plan(
    *, organization: Organization, plan_code: str, changed_by=None, note: str = ""
) -> PlanChange | None:
    """Move the organization to another plan, record the change and grant the plan's credits.

    Returns None (and changes nothing) when the organization is already on that plan.
    """
    ensure_plans()
    plan = Plan.objects.get(code=plan_code)
    with transaction.atomic():
        org = Organization.objects.select_for_update().get(pk=organization.pk)
        if org.plan_id == plan.pk:
            return None
        change = PlanChange.objects.create(
            organization=org,
            from_plan_id=org.plan_id,
            to_plan=plan,
            changed_by=changed_by,
            note=note,
            effective_at=timezone.now(),
        )
        # An operator's change replaces whatever an admin had scheduled or capped on the old plan.
        PlanChange.objects.filter(organization=org, status=PlanChange.Status.SCHEDULED).update(
            status=PlanChange.Status.CANCELLED
        )
        Organization.objects.filter(pk=org.pk).update(plan=plan, spend_cap_micros=None)
        _grant_plan_credits(organization=org, plan=plan, created_by=changed_by)
    organization.refresh_from_db()
    return change


def membership_set(*, organization: Organization, user, role: str) -> Membership:
    """Give `user` the `role` in the organization (adding them if they were not a member)."""
    membership, _ = Membership.objects.update_or_create(
        organization=organization, user=user, defaults={"role": role}
    )
    return membership


def is_org_admin(*, user, organization_id: int) -> bool:
    """Whether `user` administers the organization (and so may see and export its billing)."""
    return Membership.objects.filter(
        organization_id=organization_id, user=user, role=Membership.Role.ADMIN
    ).exists()
