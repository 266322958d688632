"""Reserving worst-case cost before a request reaches an engine, and releasing it.

Lesson 1 of DESIGN.md: reserve atomically before the call, settle after. Check-then-charge
lets parallel requests overspend. The check and the hold happen under the organization's row
lock (see billing.ledger), so parallel reservations from any number of processes queue up on
that row and each one sees the holds of those before it.
"""

from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from billing.credits import (
    CREDITS_REMAINING_SQL,
    GRANT_DUE_EXISTS_SQL,
    credits_expire_due_locked,
    credits_remaining_micros,
    db_moment,
)
from billing.errors import QuotaExceeded
from billing.ledger import month_start, organization_lock
from billing.models import Organization, Reservation, UsageRecord


def overage_this_month_micros(*, organization: Organization, now: datetime) -> int:
    """Overage charged so far in the current month (the counter resets when the month turns)."""
    if organization.overage_month == month_start(now):
        return organization.overage_micros
    return 0


def spendable_micros(*, organization: Organization, now: datetime) -> int:
    """How much more the organization may hold for new requests right now.

    Without overage (Free, Academic): the balance minus what is already held.
    With overage (Pro, Enterprise): unused credits minus holds, plus what is left under the
    monthly spend cap (the cap limits overage, the part billed at month end).
    """
    credits = None
    if organization.plan.allows_overage:
        credits = credits_remaining_micros(organization_id=organization.pk, now=now)
    return _spendable_micros(organization=organization, now=now, credits_micros=credits)


def _spendable_micros(*, organization: Organization, now: datetime, credits_micros) -> int:
    """spendable_micros, given credits_remaining_micros (only read when the plan allows overage)."""
    if not organization.plan.allows_overage:
        return organization.balance_micros - organization.reserved_micros
    cap_left = max(
        0,
        organization.plan.monthly_spend_cap_micros
        - overage_this_month_micros(organization=organization, now=now),
    )
    return (credits_micros or 0) - organization.reserved_micros + cap_left


def _reserve_checks(
    *, organization_id: int, request_id: str, now: datetime, with_credits: bool
) -> dict:
    """due (a grant to expire), held, settled and, if asked, credits (the live grants' sum)."""
    moment = db_moment(now)
    credits_sql = CREDITS_REMAINING_SQL if with_credits else "NULL"
    credits_params = [organization_id, moment] if with_credits else []
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {GRANT_DUE_EXISTS_SQL},"
            f" EXISTS (SELECT 1 FROM {Reservation._meta.db_table} WHERE request_id = %s),"
            f" EXISTS (SELECT 1 FROM {UsageRecord._meta.db_table} WHERE request_id = %s),"
            f" {credits_sql}",
            [organization_id, moment, request_id, request_id, *credits_params],
        )
        due, held, settled, credits = cursor.fetchone()
    return {
        "due": bool(due),
        "held": bool(held),
        "settled": bool(settled),
        "credits": None if credits is None else int(credits),  # PostgreSQL sums to numeric
    }


def reserve_credits(*, organization_id: int, request_id: str, amount_micros: int) -> None:
    """Hold `amount_micros` for `request_id`, or raise QuotaExceeded and hold nothing.

    Reserving the same request id twice holds once.
    """
    if amount_micros < 0:
        raise ValueError("a reservation cannot be negative")
    now = timezone.now()
    with transaction.atomic():
        org = organization_lock(organization_id=organization_id)
        # Everything the decision needs, in one statement. It runs after the lock (not as part
        # of the locking SELECT), so on PostgreSQL it sees whatever the transactions we waited
        # for committed: a replay settled meanwhile, an expiry done meanwhile.
        state = _reserve_checks(
            organization_id=org.pk,
            request_id=request_id,
            now=now,
            with_credits=org.plan.allows_overage,
        )
        # Grants past their date stop counting now, not when the periodic task gets to them.
        # The credits read above already leave them out (they count unexpired grants only).
        if state["due"]:
            credits_expire_due_locked(organization=org, now=now)
        # A request already held, or already settled (a replay), holds nothing more.
        if state["held"] or state["settled"]:
            return
        spendable = _spendable_micros(
            organization=org, now=now, credits_micros=state.get("credits")
        )
        refused = amount_micros > spendable
        if not refused:
            Reservation.objects.create(
                request_id=request_id, organization=org, amount_micros=amount_micros
            )
            Organization.objects.filter(pk=org.pk).update(
                reserved_micros=F("reserved_micros") + amount_micros
            )
    # Raised after the commit, so the expiries above stay written while nothing is held.
    if refused:
        raise QuotaExceeded(organization_id)


def release_reservation(*, request_id: str) -> None:
    """Drop the hold of a request that will not be charged. Safe to call twice."""
    with transaction.atomic():
        if _lock_holder(request_id) is not None:
            _release_locked(request_id)


def reservation_shrink(*, request_id: str, amount_micros: int) -> None:
    """Lower the hold of `request_id` to `amount_micros` (never raises it; no hold, no-op)."""
    if amount_micros < 0:
        raise ValueError("a reservation cannot be negative")
    with transaction.atomic():
        if _lock_holder(request_id) is None:
            return
        # Read again under the lock: released or shrunk meanwhile, it is what it is now.
        reservation = Reservation.objects.filter(request_id=request_id).first()
        if reservation is None or reservation.amount_micros <= amount_micros:
            return
        Reservation.objects.filter(pk=reservation.pk).update(amount_micros=amount_micros)
        Organization.objects.filter(pk=reservation.organization_id).update(
            reserved_micros=F("reserved_micros") - (reservation.amount_micros - amount_micros)
        )


def _lock_holder(request_id: str) -> int | None:
    """Lock the organization holding `request_id`'s reservation; its id, or None if no hold.
    The caller is in a transaction."""
    organization_id = (
        Reservation.objects.filter(request_id=request_id)
        .values_list("organization_id", flat=True)
        .first()
    )
    if organization_id is not None:
        organization_lock(organization_id=organization_id)
    return organization_id


def _release_locked(request_id: str) -> int:
    """Release the hold of `request_id`; the caller holds the organization's row lock."""
    reservation = Reservation.objects.filter(request_id=request_id).first()
    if reservation is None:
        return 0
    Organization.objects.filter(pk=reservation.organization_id).update(
        reserved_micros=F("reserved_micros") - reservation.amount_micros
    )
    reservation.delete()
    return reservation.amount_micros


# Longer than any request may run (the engine read timeout is minutes): a hold this old belongs
# to a process that died before settling, and would otherwise block the credits for good.
STALE_RESERVATION_AGE = timedelta(hours=1)


def reservations_release_stale(*, now: datetime | None = None) -> int:
    """Release holds older than STALE_RESERVATION_AGE; returns how many. Safe to run any time."""
    cutoff = (now or timezone.now()) - STALE_RESERVATION_AGE
    stale = list(
        Reservation.objects.filter(created_at__lt=cutoff).values_list("request_id", flat=True)
    )
    for request_id in stale:
        release_reservation(request_id=request_id)
    return len(stale)
