"""Reserving worst-case cost before a request reaches an engine, and releasing it.

Lesson 1 of DESIGN.md: reserve atomically before the call, settle after. Check-then-charge
lets parallel requests overspend.
"""

from django.db import transaction
from django.db.models import F

from billing.errors import QuotaExceeded
from billing.models import Organization, Reservation


def reserve_credits(*, organization_id: int, request_id: str, amount_micros: int) -> None:
    """Hold `amount_micros` for `request_id`, or raise QuotaExceeded and hold nothing."""
    with transaction.atomic():
        org = (
            Organization.objects.select_for_update().select_related("plan").get(pk=organization_id)
        )
        available = org.balance_micros - org.reserved_micros
        if amount_micros > available:
            raise QuotaExceeded(organization_id)
        Reservation.objects.create(
            request_id=request_id, organization=org, amount_micros=amount_micros
        )
        Organization.objects.filter(pk=org.pk).update(
            reserved_micros=F("reserved_micros") + amount_micros
        )


def release_reservation(*, request_id: str) -> None:
    """Drop the hold of a request that will not be charged. Safe to call twice."""
    with transaction.atomic():
        _release_locked(request_id)


def _release_locked(request_id: str) -> int:
    reservation = Reservation.objects.select_for_update().filter(request_id=request_id).first()
    if reservation is None:
        return 0
    Organization.objects.filter(pk=reservation.organization_id).update(
        reserved_micros=F("reserved_micros") - reservation.amount_micros
    )
    reservation.delete()
    return reservation.amount_micros
