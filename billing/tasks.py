"""Celery tasks: thin wrappers over billing services, taking ids and ISO dates, idempotent.

Queue them after commit, e.g. `transaction.on_commit(lambda: rollup_usage_day.delay(day))`.
"""

from datetime import date

from celery import shared_task

from billing.credits import credits_expire_all_due, credits_expire_due
from billing.invoices import invoice_issue, invoices_issue_for_month, previous_month
from billing.lost import reservations_settle_lost
from billing.plan_changes import plan_changes_apply_due
from billing.rollups import usage_rollup_day, usage_rollup_recent


@shared_task
def rollup_usage_day(day: str) -> int:
    return usage_rollup_day(day=date.fromisoformat(day))


@shared_task
def rollup_recent_usage() -> list[str]:
    return [day.isoformat() for day in usage_rollup_recent()]


@shared_task
def issue_invoice(organization_id: int, month: str) -> int | None:
    invoice = invoice_issue(organization_id=organization_id, month=date.fromisoformat(month))
    return invoice.pk if invoice else None


@shared_task
def issue_last_month_invoices() -> int:
    issued = len(invoices_issue_for_month(month=previous_month()))
    # Downgrades scheduled for the month's end, after its overage is invoiced on the old plan.
    plan_changes_apply_due()
    return issued


@shared_task
def apply_scheduled_plan_changes() -> int:
    return plan_changes_apply_due()


@shared_task
def expire_organization_credits(organization_id: int) -> int:
    return credits_expire_due(organization_id=organization_id)


@shared_task
def expire_due_credits() -> int:
    return credits_expire_all_due()


@shared_task
def settle_lost_requests() -> int:
    return reservations_settle_lost()
