"""Settling a request: its one usage row, its charge, and the release of its reservation."""

import dataclasses
from datetime import datetime

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from billing.credits import (
    GRANT_DUE_EXISTS_SQL,
    credits_consume_locked,
    credits_expire_due_locked,
    db_moment,
)
from billing.ledger import ledger_append, month_start, organization_lock
from billing.models import LedgerEntry, Organization, Reservation, UsageRecord
from billing.quota import _release_locked

TOKENS_PER_PRICE_UNIT = 1_000_000  # prices are per million tokens


@dataclasses.dataclass(frozen=True)
class UsageReport:
    """What the gateway knows about a finished (or failed, or cancelled) request.

    For a cancelled request (client disconnect) the tokens are what was produced before the
    cancel; it is charged for those, like any other request.
    """

    request_id: str
    organization_id: int
    user_id: int | None
    api_key_prefix: str
    team: str
    project: str
    model: str
    deployment: str
    source: str
    status: str
    http_status: int
    error_code: str
    prompt_tokens: int
    completion_tokens: int
    tokens_counted_by_gateway: bool
    time_to_first_token_ms: int | None
    duration_ms: int
    input_price_micros: int
    output_price_micros: int
    created_at: datetime
    finished_at: datetime


def usage_cost_micros(
    *, prompt_tokens: int, completion_tokens: int, input_price_micros: int, output_price_micros: int
) -> int:
    """Cost in micro-dollars, rounded up so that no fraction of a token is given away."""
    numerator = prompt_tokens * input_price_micros + completion_tokens * output_price_micros
    return -(-numerator // TOKENS_PER_PRICE_UNIT)


def settle_usage(report: UsageReport) -> UsageRecord:
    """Write the request's usage row and charge it, once. Replaying the same request id is a no-op.

    The charge is tokens x the prices in the report (the prices that applied when the request
    ran); it uses credits soonest-expiring first, and whatever no credit covers is overage.
    The request's reservation is released in the same transaction.
    """
    cost = usage_cost_micros(
        prompt_tokens=report.prompt_tokens,
        completion_tokens=report.completion_tokens,
        input_price_micros=report.input_price_micros,
        output_price_micros=report.output_price_micros,
    )
    now = timezone.now()
    request_id = report.request_id
    with transaction.atomic():
        # The row lock also serialises replays of one request id: the second one waits, then
        # finds the first one's row.
        org = organization_lock(organization_id=report.organization_id)
        # What settling needs to know, in one statement, read after the lock (see
        # reserve_credits): replay or not, the hold to release, and whether a grant is due.
        state = _settle_checks(organization_id=org.pk, request_id=request_id, now=now)
        if state["settled"]:
            _release_locked(request_id)
            return UsageRecord.objects.get(request_id=request_id)
        record = UsageRecord.objects.create(**dataclasses.asdict(report), cost_micros=cost)
        # The release of a hold on this organization joins the organization's one UPDATE below;
        # a hold on another organization (a caller's mistake) is released the old way.
        updates = {}
        if state["held_by"] == org.pk:
            deleted, _ = Reservation.objects.filter(request_id=request_id).delete()
            if deleted:  # always, as holds only move under the lock; but never release twice
                updates["reserved_micros"] = F("reserved_micros") - state["held_micros"]
        elif state["held_by"] is not None:
            _release_locked(request_id)
        if cost:
            if state["due"]:
                credits_expire_due_locked(organization=org, now=now)
            _charge_locked(
                organization=org, record=record, cost_micros=cost, now=now, updates=updates
            )
        elif updates:
            Organization.objects.filter(pk=org.pk).update(**updates)
    return record


def _settle_checks(*, organization_id: int, request_id: str, now: datetime) -> dict:
    """settled (a replay), held_by and held_micros (the request's hold), due (a grant to expire)."""
    reservations = Reservation._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT EXISTS (SELECT 1 FROM {UsageRecord._meta.db_table} WHERE request_id = %s),"
            f" (SELECT organization_id FROM {reservations} WHERE request_id = %s),"
            f" (SELECT amount_micros FROM {reservations} WHERE request_id = %s),"
            f" {GRANT_DUE_EXISTS_SQL}",
            [request_id, request_id, request_id, organization_id, db_moment(now)],
        )
        settled, held_by, held_micros, due = cursor.fetchone()
    return {
        "settled": bool(settled),
        "held_by": held_by,
        "held_micros": held_micros,
        "due": bool(due),
    }


def _charge_locked(
    *,
    organization: Organization,
    record: UsageRecord,
    cost_micros: int,
    now: datetime,
    updates: dict,
) -> None:
    """Charge the record; `updates` are other organization columns to set by the same UPDATE."""
    uncovered = credits_consume_locked(
        organization=organization, amount_micros=cost_micros, now=now
    )
    if uncovered:
        month = month_start(now)
        if organization.overage_month == month:
            updates["overage_micros"] = F("overage_micros") + uncovered
        else:
            updates["overage_month"] = month
            updates["overage_micros"] = uncovered
    ledger_append(
        organization=organization,
        kind=LedgerEntry.Kind.CHARGE,
        amount_micros=-cost_micros,
        request_id=record.request_id,
        overage_micros=uncovered,
        note=record.model,
        at=now,
        organization_updates=updates,
    )
