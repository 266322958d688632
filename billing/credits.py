"""Granting credits to an organization."""

from datetime import datetime

from django.db import transaction
from django.db.models import F

from billing.models import Organization


def grant_credits(
    *,
    organization: Organization,
    amount_micros: int,
    kind: str = "plan",
    expires_at: datetime | None = None,
    note: str = "",
) -> None:
    """Add credits to the organization's balance. (Ledger entry: see the billing issue.)"""
    with transaction.atomic():
        Organization.objects.filter(pk=organization.pk).update(
            balance_micros=F("balance_micros") + amount_micros
        )
