"""Self-serve plan changes by an organization's admins: Free -> Pro, Pro's spend cap, Pro -> Free.

- An upgrade takes effect at once and grants the new plan's included credits.
- A downgrade waits until the end of the (UTC) month, stored as a `scheduled` PlanChange; the
  month-end job (billing.tasks.issue_last_month_invoices) applies it after invoicing the month.
- Pro's monthly spend cap moves within the plan's limits (SPEND_CAP_MIN_MICROS to the plan's cap).

Each change is one PlanChange row (the plan history) and one ledger entry: the plan fee if the
plan has one, else a zero-amount adjustment whose note says what changed, so the ledger alone
tells the organization's story. Academic and Enterprise are granted by an operator (admin).
Every write holds the organization's row lock, like every other balance move in billing.
"""

import dataclasses
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from billing.invoices import month_bounds
from billing.ledger import ledger_append, month_start, organization_lock
from billing.models import MICROS_PER_DOLLAR, LedgerEntry, Organization, Plan, PlanChange
from billing.money import format_usd
from billing.organizations import _grant_plan_credits, is_org_admin
from billing.plans import ensure_plans

# Plans an admin may move to by themselves; the others are granted by an operator.
SELF_SERVE_PLANS = (Plan.Code.FREE, Plan.Code.PRO)
# Pro's cap can go down to a dollar (0 would be "no overage": that is the Free plan).
SPEND_CAP_MIN_MICROS = 1 * MICROS_PER_DOLLAR
# Neither plan has a monthly fee in the seed (Pro bills overage only); kept here so the
# confirmation and the ledger say what a fee would be in one place.
PLAN_FEES_MICROS = {Plan.Code.FREE: 0, Plan.Code.PRO: 0}


class PlanChangeRefused(Exception):
    """A change the caller may not make; the message is shown to the admin as it is."""


class NotAnAdmin(PlanChangeRefused):
    pass


@dataclasses.dataclass(frozen=True)
class PlanOffer:
    """What moving to `plan` would do, as the confirmation step shows it."""

    plan: Plan
    kind: str  # "upgrade" (at once) or "downgrade" (at the end of the month)
    fee_micros: int
    credits_micros: int  # granted now (upgrades only)
    credit_validity_days: int
    effective_at: datetime  # now, or the end of the month


def _period_end(now: datetime) -> datetime:
    return month_bounds(month_start(now))[1]


def _check_admin(*, user, organization_id: int) -> None:
    if user is None or not is_org_admin(user=user, organization_id=organization_id):
        raise NotAnAdmin("Only an organization's admins can change its plan.")


def scheduled_change(*, organization_id: int) -> PlanChange | None:
    return (
        PlanChange.objects.filter(
            organization_id=organization_id, status=PlanChange.Status.SCHEDULED
        )
        .select_related("to_plan")
        .first()
    )


def plan_offers(*, organization: Organization, now: datetime | None = None) -> list[PlanOffer]:
    """The self-serve plans the organization may move to (none from Academic or Enterprise)."""
    ensure_plans()
    now = now or timezone.now()
    if organization.plan.code not in SELF_SERVE_PLANS:
        return []
    offers = []
    for plan in Plan.objects.filter(code__in=SELF_SERVE_PLANS).exclude(pk=organization.plan_id):
        offers.append(plan_offer(organization=organization, plan_code=plan.code, now=now))
    return offers


def plan_offer(
    *, organization: Organization, plan_code: str, now: datetime | None = None
) -> PlanOffer:
    """What moving to `plan_code` would charge, grant and when; refused if not self-serve."""
    now = now or timezone.now()
    if plan_code not in SELF_SERVE_PLANS or organization.plan.code not in SELF_SERVE_PLANS:
        raise PlanChangeRefused("Academic and Enterprise plans are arranged with us, not here.")
    if organization.plan.code == plan_code:
        raise PlanChangeRefused(
            f"The organization is already on the {organization.plan.name} plan."
        )
    plan = Plan.objects.get(code=plan_code)
    upgrade = plan.code == Plan.Code.PRO
    return PlanOffer(
        plan=plan,
        kind="upgrade" if upgrade else "downgrade",
        fee_micros=PLAN_FEES_MICROS[plan.code],
        credits_micros=plan.included_credits_micros if upgrade else 0,
        credit_validity_days=plan.credit_validity_days,
        effective_at=now if upgrade else _period_end(now),
    )


def _record(
    *, org: Organization, note: str, fee_micros: int = 0, at: datetime | None = None
) -> LedgerEntry:
    """The change's ledger entry: the fee, or a zero adjustment that records it."""
    if fee_micros:
        return ledger_append(
            organization=org,
            kind=LedgerEntry.Kind.CHARGE,
            amount_micros=-fee_micros,
            note=note,
            at=at,
        )
    return ledger_append(
        organization=org, kind=LedgerEntry.Kind.ADJUSTMENT, amount_micros=0, note=note, at=at
    )


def plan_change_request(
    *, organization: Organization, plan_code: str, user, now: datetime | None = None
) -> PlanChange:
    """An admin's change of plan: an upgrade applies now, a downgrade is scheduled."""
    now = now or timezone.now()
    _check_admin(user=user, organization_id=organization.pk)
    with transaction.atomic():
        org = organization_lock(organization_id=organization.pk)
        offer = plan_offer(organization=org, plan_code=plan_code, now=now)
        waiting = scheduled_change(organization_id=org.pk)
        if offer.kind == "downgrade":
            if waiting is not None and waiting.to_plan_id == offer.plan.pk:
                raise PlanChangeRefused(
                    f"A move to {offer.plan.name} is already scheduled for "
                    f"{waiting.effective_at:%Y-%m-%d}."
                )
            change = PlanChange.objects.create(
                organization=org,
                from_plan=org.plan,
                to_plan=offer.plan,
                changed_by=user,
                status=PlanChange.Status.SCHEDULED,
                effective_at=offer.effective_at,
                note=f"Scheduled for {offer.effective_at:%Y-%m-%d} 00:00 UTC",
            )
            _record(
                org=org,
                note=f"Plan change scheduled: {org.plan.name} to {offer.plan.name} "
                f"on {offer.effective_at:%Y-%m-%d}",
            )
            return change
        if waiting is not None:
            _cancel_locked(change=waiting, org=org)
        change = PlanChange.objects.create(
            organization=org,
            from_plan=org.plan,
            to_plan=offer.plan,
            changed_by=user,
            effective_at=now,
            note="Upgraded by an admin",
        )
        _record(
            org=org,
            fee_micros=offer.fee_micros,
            note=f"Plan changed: {org.plan.name} to {offer.plan.name}"
            + ("" if offer.fee_micros else " (no fee)"),
        )
        Organization.objects.filter(pk=org.pk).update(plan=offer.plan, spend_cap_micros=None)
        org.plan = offer.plan
        _grant_plan_credits(organization=org, plan=offer.plan, created_by=user)
    organization.refresh_from_db()
    return change


def _cancel_locked(*, change: PlanChange, org: Organization) -> None:
    PlanChange.objects.filter(pk=change.pk).update(status=PlanChange.Status.CANCELLED)
    _record(org=org, note=f"Scheduled plan change to {change.to_plan.name} cancelled")


def plan_change_cancel(*, organization: Organization, user) -> PlanChange:
    """Cancel the scheduled downgrade: the organization stays on its plan."""
    _check_admin(user=user, organization_id=organization.pk)
    with transaction.atomic():
        org = organization_lock(organization_id=organization.pk)
        waiting = scheduled_change(organization_id=org.pk)
        if waiting is None:
            raise PlanChangeRefused("No plan change is scheduled.")
        _cancel_locked(change=waiting, org=org)
    waiting.refresh_from_db()
    return waiting


def spend_cap_limits(*, organization: Organization) -> tuple[int, int] | None:
    """(lowest, highest) monthly spend cap an admin may choose, or None if the plan has none."""
    plan = organization.plan
    if plan.code != Plan.Code.PRO or not plan.allows_overage:
        return None
    return SPEND_CAP_MIN_MICROS, plan.monthly_spend_cap_micros


def spend_cap_set(*, organization: Organization, cap_micros: int, user) -> PlanChange:
    """Set Pro's monthly spend cap within the plan's limits; refused (nothing changes) outside."""
    _check_admin(user=user, organization_id=organization.pk)
    with transaction.atomic():
        org = organization_lock(organization_id=organization.pk)
        limits = spend_cap_limits(organization=org)
        if limits is None:
            raise PlanChangeRefused(f"The {org.plan.name} plan has no adjustable spend cap.")
        low, high = limits
        if not low <= cap_micros <= high:
            raise PlanChangeRefused(
                f"Choose a monthly spend cap between {format_usd(low)} and {format_usd(high)}."
            )
        before = org.monthly_spend_cap_micros
        if cap_micros == before:
            raise PlanChangeRefused(f"The monthly spend cap is already {format_usd(before)}.")
        note = f"Monthly spend cap {format_usd(before)} to {format_usd(cap_micros)}"
        change = PlanChange.objects.create(
            organization=org,
            from_plan=org.plan,
            to_plan=org.plan,
            changed_by=user,
            effective_at=timezone.now(),
            spend_cap_micros=cap_micros,
            note=note,
        )
        _record(org=org, note=note)
        Organization.objects.filter(pk=org.pk).update(spend_cap_micros=cap_micros)
    organization.refresh_from_db()
    return change


def plan_changes_apply_due(*, now: datetime | None = None) -> int:
    """Apply scheduled changes whose time has come (the month-end job); returns how many.

    Running it again applies nothing twice: each change leaves `scheduled` under the lock.
    """
    now = now or timezone.now()
    due = PlanChange.objects.filter(
        status=PlanChange.Status.SCHEDULED, effective_at__lte=now
    ).values_list("pk", "organization_id")
    applied = 0
    for change_id, organization_id in list(due):
        with transaction.atomic():
            org = organization_lock(organization_id=organization_id)
            change = (
                PlanChange.objects.select_related("to_plan")
                .filter(pk=change_id, status=PlanChange.Status.SCHEDULED)
                .first()
            )
            if change is None:
                continue
            PlanChange.objects.filter(pk=change.pk).update(status=PlanChange.Status.APPLIED)
            # No credits on a downgrade: moving down and up again must not mint credits.
            _record(
                org=org,
                at=now,
                note=f"Plan changed: {org.plan.name} to {change.to_plan.name} (scheduled; no fee)",
            )
            Organization.objects.filter(pk=org.pk).update(
                plan=change.to_plan, spend_cap_micros=None
            )
            applied += 1
    return applied


def plan_history(*, organization_id: int, limit: int = 20) -> list[PlanChange]:
    return list(
        PlanChange.objects.filter(organization_id=organization_id).select_related(
            "from_plan", "to_plan", "changed_by"
        )[:limit]
    )
