"""Credit grants: giving credits, using them up soonest-expiring first, and expiring them."""

from datetime import datetime

from django.db import connection, transaction
from django.db.models import Q, Sum
from django.utils import timezone

from billing.ledger import ledger_append, organization_lock
from billing.models import CreditGrant, LedgerEntry, Organization


def grant_credits(
    *,
    organization: Organization,
    amount_micros: int,
    kind: str = CreditGrant.Kind.PLAN,
    expires_at: datetime | None = None,
    note: str = "",
    created_by=None,
) -> CreditGrant:
    """Give `amount_micros` of credits (a grant row plus its ledger entry) to the organization."""
    if amount_micros <= 0:
        raise ValueError("a credit grant must be positive")
    if kind not in CreditGrant.Kind.values:
        raise ValueError(f"unknown credit grant kind {kind!r}")
    with transaction.atomic():
        org = organization_lock(organization_id=organization.pk)
        grant = CreditGrant.objects.create(
            organization=org,
            kind=kind,
            amount_micros=amount_micros,
            remaining_micros=amount_micros,
            expires_at=expires_at,
            note=note,
            created_by=created_by,
        )
        ledger_append(
            organization=org,
            kind=LedgerEntry.Kind.GRANT,
            amount_micros=amount_micros,
            grant=grant,
            note=note or grant.get_kind_display(),
        )
    organization.balance_micros = org.balance_micros
    return grant


def _live_grants(*, organization_id: int, now: datetime):
    return CreditGrant.objects.filter(
        organization_id=organization_id, remaining_micros__gt=0, expired_at__isnull=True
    ).filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))


# The per-request checks (billing.quota, billing.usage) are written as SQL fragments, each with
# two parameters: the organization id and `now` (adapted with db_moment). Measured: building and
# compiling the equivalent ORM subqueries cost more CPU than running all of the statements.
_GRANTS = CreditGrant._meta.db_table
GRANT_DUE_EXISTS_SQL = (
    f"EXISTS (SELECT 1 FROM {_GRANTS} WHERE organization_id = %s"
    " AND expired_at IS NULL AND expires_at <= %s)"
)
_LIVE_GRANTS_WHERE = (  # the rows of _live_grants
    "organization_id = %s AND remaining_micros > 0 AND expired_at IS NULL"
    " AND (expires_at IS NULL OR expires_at > %s)"
)
CREDITS_REMAINING_SQL = (  # the same sum as credits_remaining_micros (NULL when none)
    f"(SELECT SUM(remaining_micros) FROM {_GRANTS} WHERE {_LIVE_GRANTS_WHERE})"
)


def db_moment(moment: datetime):
    """`moment` as the database stores a DateTimeField, for the raw SQL fragments above."""
    return connection.ops.adapt_datetimefield_value(moment)


def credits_remaining_micros(*, organization_id: int, now: datetime | None = None) -> int:
    """Unused, unexpired credits (the balance minus any overage not yet invoiced)."""
    total = _live_grants(organization_id=organization_id, now=now or timezone.now()).aggregate(
        total=Sum("remaining_micros")
    )["total"]
    return total or 0


def credits_consume_locked(*, organization: Organization, amount_micros: int, now: datetime) -> int:
    """Use up to `amount_micros` of live grants, soonest-expiring first; return the uncovered rest.

    The caller holds organization_lock; the ledger entry for the charge is the caller's.
    """
    left = amount_micros
    with connection.cursor() as cursor:
        # Soonest-expiring first, grants that never expire last, then oldest first.
        cursor.execute(
            f"SELECT id, remaining_micros FROM {_GRANTS} WHERE {_LIVE_GRANTS_WHERE}"
            " ORDER BY CASE WHEN expires_at IS NULL THEN 1 ELSE 0 END, expires_at, id",
            [organization.pk, db_moment(now)],
        )
        grants = cursor.fetchall()
        for grant_id, remaining in grants:
            take = min(remaining, left)
            cursor.execute(
                f"UPDATE {_GRANTS} SET remaining_micros = remaining_micros - %s WHERE id = %s",
                [take, grant_id],
            )
            left -= take
            if left == 0:
                break
    return left


def credits_expire_due_locked(*, organization: Organization, now: datetime) -> int:
    """Write off what remains of grants whose date has passed. The caller holds organization_lock.

    Returns how many grants expired. Each grant expires once (expired_at, and a unique
    constraint on its expiration entry).
    """
    due = CreditGrant.objects.filter(
        organization_id=organization.pk, expired_at__isnull=True, expires_at__lte=now
    ).order_by("expires_at", "id")
    count = 0
    for grant in due:
        CreditGrant.objects.filter(pk=grant.pk).update(remaining_micros=0, expired_at=now)
        if grant.remaining_micros:
            ledger_append(
                organization=organization,
                kind=LedgerEntry.Kind.EXPIRATION,
                amount_micros=-grant.remaining_micros,
                grant=grant,
                note=f"{grant.get_kind_display()} expired",
                at=now,
            )
        count += 1
    return count


def credits_expire_due(*, organization_id: int, now: datetime | None = None) -> int:
    """Expire the organization's grants that are past their date. Running it twice changes nothing."""
    now = now or timezone.now()
    with transaction.atomic():
        org = organization_lock(organization_id=organization_id)
        return credits_expire_due_locked(organization=org, now=now)


def organizations_with_due_grants(*, now: datetime | None = None) -> list[int]:
    """Ids of organizations that have grants past their date not yet expired."""
    return list(
        CreditGrant.objects.filter(expired_at__isnull=True, expires_at__lte=now or timezone.now())
        .values_list("organization_id", flat=True)
        .distinct()
    )


def balance_adjust(*, organization: Organization, amount_micros: int, note: str) -> LedgerEntry:
    """An operator's correction of the balance, as an adjustment entry (never an edit).

    A negative adjustment uses credits like a charge does (soonest-expiring first), so unused
    credits never exceed the balance; a positive one only adds to the balance.
    """
    if not amount_micros:
        raise ValueError("an adjustment must move the balance")
    if not note:
        raise ValueError("an adjustment needs a note saying why")
    with transaction.atomic():
        org = organization_lock(organization_id=organization.pk)
        if amount_micros < 0:
            credits_consume_locked(
                organization=org, amount_micros=-amount_micros, now=timezone.now()
            )
        entry = ledger_append(
            organization=org,
            kind=LedgerEntry.Kind.ADJUSTMENT,
            amount_micros=amount_micros,
            note=note,
        )
    organization.balance_micros = org.balance_micros
    return entry


def credits_expire_all_due(*, now: datetime | None = None) -> int:
    """Expire every organization's grants that are past their date; returns how many expired."""
    return sum(
        credits_expire_due(organization_id=organization_id, now=now)
        for organization_id in organizations_with_due_grants(now=now)
    )
