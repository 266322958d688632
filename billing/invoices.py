"""Month-end invoices for overage on plans that allow it: one per organization and month.

Issuing an invoice appends an adjustment that brings the overage back onto the balance (the
invoice now owes it), so the next month starts from the credits alone. Issuing twice is refused
by the unique (organization, month) constraint and skipped before it gets there.
"""

from datetime import UTC, date, datetime, time

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from billing.ledger import ledger_append, month_start, organization_lock
from billing.models import Invoice, LedgerEntry


def month_bounds(month: date) -> tuple[datetime, datetime]:
    """The UTC instants [start, end) of the month that starts on `month`."""
    start = datetime.combine(month.replace(day=1), time.min, tzinfo=UTC)
    if start.month == 12:
        end = start.replace(year=start.year + 1, month=1)
    else:
        end = start.replace(month=start.month + 1)
    return start, end


def previous_month(now: datetime | None = None) -> date:
    this_month = month_start(now or timezone.now())
    if this_month.month == 1:
        return this_month.replace(year=this_month.year - 1, month=12)
    return this_month.replace(month=this_month.month - 1)


def invoice_issue(*, organization_id: int, month: date) -> Invoice | None:
    """The organization's overage invoice for `month`, or None if it has no overage or has one."""
    month = month.replace(day=1)
    start, end = month_bounds(month)
    with transaction.atomic():
        org = organization_lock(organization_id=organization_id)
        if Invoice.objects.filter(organization=org, month=month).exists():
            return None
        overage = (
            LedgerEntry.objects.filter(
                organization=org,
                kind=LedgerEntry.Kind.CHARGE,
                created_at__gte=start,
                created_at__lt=end,
            ).aggregate(total=Sum("overage_micros"))["total"]
            or 0
        )
        if overage <= 0:
            return None
        invoice = Invoice.objects.create(organization=org, month=month, overage_micros=overage)
        ledger_append(
            organization=org,
            kind=LedgerEntry.Kind.ADJUSTMENT,
            amount_micros=overage,
            invoice=invoice,
            note=f"Overage for {month:%Y-%m} invoiced",
        )
    return invoice


def invoices_issue_for_month(*, month: date, now: datetime | None = None) -> list[Invoice]:
    """Invoice every organization with overage in `month`; returns the invoices issued now."""
    month = month.replace(day=1)
    if month >= month_start(now or timezone.now()):
        raise ValueError(f"{month:%Y-%m} is not over yet")
    start, end = month_bounds(month)
    organization_ids = (
        LedgerEntry.objects.filter(
            kind=LedgerEntry.Kind.CHARGE,
            overage_micros__gt=0,
            created_at__gte=start,
            created_at__lt=end,
        )
        .values_list("organization_id", flat=True)
        .distinct()
        .order_by()
    )
    issued = []
    for organization_id in organization_ids:
        invoice = invoice_issue(organization_id=organization_id, month=month)
        if invoice is not None:
            issued.append(invoice)
    return issued
