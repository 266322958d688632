"""The append-only ledger and the organization row lock that every balance move holds.

Rule: a service that moves money first takes `organization_lock` (SELECT ... FOR UPDATE on
PostgreSQL; SQLite runs every transaction as BEGIN IMMEDIATE, which locks the whole database),
then appends ledger entries through `ledger_append`, which updates `balance_micros` in the same
transaction. So the balance always equals the sum of the ledger, even under concurrency.
"""

from datetime import UTC, date, datetime

from django.db.models import F, Sum
from django.utils import timezone

from billing.models import CreditGrant, Invoice, LedgerEntry, Organization


def organization_lock(*, organization_id: int) -> Organization:
    """The organization row, locked until the surrounding transaction ends."""
    # of=("self",): the plan row, shared by many organizations, is read, not locked (locking it
    # would serialise every organization on a plan, and could deadlock two batches).
    return (
        Organization.objects.select_for_update(of=("self",))
        .select_related("plan")
        .get(pk=organization_id)
    )


def month_start(moment: datetime | date) -> date:
    """First day of the (UTC) month that `moment` falls in."""
    if isinstance(moment, datetime):
        moment = moment.astimezone(UTC).date()
    return moment.replace(day=1)


def ledger_append(
    *,
    organization: Organization,
    kind: str,
    amount_micros: int,
    note: str = "",
    request_id: str = "",
    grant: CreditGrant | None = None,
    invoice: Invoice | None = None,
    overage_micros: int = 0,
    at: datetime | None = None,
    organization_updates: dict | None = None,
) -> LedgerEntry:
    """Append one entry and move the balance by its amount. The caller holds organization_lock.

    `organization_updates` are other column updates of the organization row (e.g. the release
    of a hold) made by the same UPDATE as the balance, which saves a statement per charge.
    """
    entry = LedgerEntry(
        kind=kind,
        amount_micros=amount_micros,
        overage_micros=overage_micros,
        request_id=request_id,
        grant=grant,
        invoice=invoice,
        note=note,
        created_at=at or timezone.now(),
    )
    ledger_append_many(
        organization=organization, entries=[entry], organization_updates=organization_updates
    )
    return entry


def ledger_append_many(
    *,
    organization: Organization,
    entries: list[LedgerEntry],
    organization_updates: dict | None = None,
) -> None:
    """Append unsaved `entries` in order, with one INSERT and one UPDATE of the balance.

    Each entry's balance_after is the balance once it and those before it are applied, exactly
    as if they had been appended one by one. The caller holds organization_lock.
    """
    balance = organization.balance_micros
    for entry in entries:
        balance += entry.amount_micros
        entry.organization = organization
        entry.balance_after_micros = balance
    LedgerEntry.objects.bulk_create(entries)
    Organization.objects.filter(pk=organization.pk).update(
        balance_micros=F("balance_micros") + (balance - organization.balance_micros),
        **(organization_updates or {}),
    )
    organization.balance_micros = balance


def ledger_sum_micros(*, organization_id: int) -> int:
    """What the balance must equal: the sum of every ledger entry of the organization."""
    total = LedgerEntry.objects.filter(organization_id=organization_id).aggregate(
        total=Sum("amount_micros")
    )["total"]
    return total or 0


def organizations_out_of_balance() -> list[tuple[int, int, int]]:
    """(organization id, balance, ledger sum) wherever the two differ; empty when all is well."""
    sums = dict(
        LedgerEntry.objects.values("organization_id")
        .annotate(total=Sum("amount_micros"))
        .order_by()
        .values_list("organization_id", "total")
    )
    return [
        (org_id, balance, sums.get(org_id, 0))
        for org_id, balance in Organization.objects.values_list("id", "balance_micros")
        if balance != sums.get(org_id, 0)
    ]
