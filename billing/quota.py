"""Reserving worst-case cost before a request reaches an engine, and releasing it.

Lesson 1 of DESIGN.md: reserve atomically before the call, settle after. Check-then-charge
lets parallel requests overspend. The check and the hold happen under the organization's row
lock (see billing.ledger), so parallel reservations from any number of processes queue up on
that row and each one sees the holds of those before it.
"""

import dataclasses
from collections.abc import Sequence
from datetime import date, datetime

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
        organization.monthly_spend_cap_micros
        - overage_this_month_micros(organization=organization, now=now),
    )
    return (credits_micros or 0) - organization.reserved_micros + cap_left


@dataclasses.dataclass(frozen=True)
class HoldRequest:
    """A request's worst case to hold, with what a `lost` settlement would need (the
    reservation is the request's write-ahead record: see Reservation)."""

    request_id: str
    organization_id: int
    amount_micros: int
    holder: str = ""
    user_id: int | None = None
    api_key_prefix: str = ""
    team: str = ""
    project: str = ""
    model: str = ""
    source: str = ""
    prompt_tokens: int = 0
    input_price_micros: int = 0
    output_price_micros: int = 0


def _reserve_checks(
    *, organization_id: int, request_ids: list[str], now: datetime, with_credits: bool
) -> dict:
    """due (a grant to expire), held and settled (request ids), and, if asked, credits (the
    live grants' sum), in one statement."""
    moment = db_moment(now)
    marks = ", ".join(["%s"] * len(request_ids))
    credits_sql = CREDITS_REMAINING_SQL if with_credits else "NULL"
    credits_params = [organization_id, moment] if with_credits else []
    with connection.cursor() as cursor:
        cursor.execute(
            # PostgreSQL types a UNION's columns branch by branch: a bare NULL first would
            # make the third column text, which the credits' numeric sum cannot join.
            f"SELECT 1, request_id, CAST(NULL AS NUMERIC) FROM {Reservation._meta.db_table}"
            f" WHERE request_id IN ({marks})"
            " UNION ALL"
            f" SELECT 2, request_id, NULL FROM {UsageRecord._meta.db_table}"
            f" WHERE request_id IN ({marks})"
            " UNION ALL"
            f" SELECT 3, NULL, NULL WHERE {GRANT_DUE_EXISTS_SQL}"
            " UNION ALL"
            f" SELECT 4, NULL, CAST({credits_sql} AS NUMERIC)",
            [*request_ids, *request_ids, organization_id, moment, *credits_params],
        )
        rows = cursor.fetchall()
    credits = next((value for kind, _, value in rows if kind == 4), None)
    return {
        "held": {request_id for kind, request_id, _ in rows if kind == 1},
        "settled": {request_id for kind, request_id, _ in rows if kind == 2},
        "due": any(kind == 3 for kind, _, _ in rows),
        "credits": None if credits is None else int(credits),  # PostgreSQL sums to numeric
    }


def reserve_credits(
    *, organization_id: int, request_id: str, amount_micros: int, **write_ahead
) -> None:
    """Hold `amount_micros` for `request_id`, or raise QuotaExceeded and hold nothing.

    Reserving the same request id twice holds once. `write_ahead` are the other HoldRequest
    fields (who, which model, the prompt), kept on the reservation.
    """
    request = HoldRequest(
        request_id=request_id,
        organization_id=organization_id,
        amount_micros=amount_micros,
        **write_ahead,
    )
    if not reserve_credits_batch([request])[0]:
        raise QuotaExceeded(organization_id)


def reserve_credits_batch(requests: Sequence[HoldRequest]) -> list[bool]:
    """reserve_credits for many requests in one transaction: True where held, False where
    refused, in the order given.

    Each request is decided exactly as if reserved alone, one after the other in order (a
    refused one holds nothing and the next one may still fit). Per organization: one lock, one
    statement for the checks, one INSERT of the holds and one UPDATE, however many requests.
    """
    if any(request.amount_micros < 0 for request in requests):
        raise ValueError("a reservation cannot be negative")
    by_organization: dict[int, list[HoldRequest]] = {}
    for request in requests:
        by_organization.setdefault(request.organization_id, []).append(request)
    now = timezone.now()
    decided: dict[int, bool] = {}  # id(request) -> held
    with transaction.atomic():
        # Locks taken in id order, so two batches never wait on each other in a cycle.
        for organization_id in sorted(by_organization):
            decided.update(
                _reserve_organization(
                    organization_id=organization_id,
                    requests=by_organization[organization_id],
                    now=now,
                )
            )
    # Quota refusals are decided after the commit, so the expiries above stay written.
    return [decided[id(request)] for request in requests]


@dataclasses.dataclass
class _HeldPlan:
    allows_overage: bool
    monthly_spend_cap_micros: int


@dataclasses.dataclass
class _Held:
    """What reserving needs of the locked organization row and its plan, read in one SELECT
    (this runs once per request, and the ORM's model instances cost more than the SQL); shaped
    like an Organization with its plan, so that _spendable_micros decides for both."""

    balance_micros: int
    reserved_micros: int
    overage_month: date | None  # both backends give a DateField back as a date
    overage_micros: int
    plan: _HeldPlan
    monthly_spend_cap_micros: int  # the organization's own cap, else its plan's


_ORG = Organization._meta.db_table
_LOCK_FOR_RESERVE_SQL = (
    "SELECT o.balance_micros, o.reserved_micros, o.overage_month, o.overage_micros,"
    " p.allows_overage, COALESCE(o.spend_cap_micros, p.monthly_spend_cap_micros)"
    f" FROM {_ORG} o JOIN {Organization._meta.get_field('plan').related_model._meta.db_table} p"
    " ON p.id = o.plan_id WHERE o.id = %s"
)
_RESERVATION_COLUMNS = (
    "request_id",
    "organization_id",
    "amount_micros",
    "created_at",
    "holder",
    "user_id",
    "api_key_prefix",
    "team",
    "project",
    "model",
    "source",
    "prompt_tokens",
    "input_price_micros",
    "output_price_micros",
)


def _lock_for_reserve(organization_id: int) -> _Held:
    """organization_lock, reading only what reserving needs (same lock, same order)."""
    sql = _LOCK_FOR_RESERVE_SQL
    if connection.vendor == "postgresql":
        # A reservation is a hold, not money: committed without waiting for the disk, it costs
        # the request a disk flush less. A database crash could forget the holds of its last
        # moment, never a charge (usage rows commit synchronously). Set in this statement, not
        # one of its own: a round trip less.
        sql = sql.replace("SELECT ", "SELECT set_config('synchronous_commit', 'off', true), ", 1)
        sql += " FOR UPDATE OF o"
    # (SQLite runs every transaction as BEGIN IMMEDIATE: the whole database is locked.)
    with connection.cursor() as cursor:
        cursor.execute(sql, [organization_id])
        row = cursor.fetchone()
    if row is None:
        raise Organization.DoesNotExist(f"organization {organization_id}")
    balance, reserved, overage_month, overage, allows_overage, cap = row[-6:]
    return _Held(
        balance, reserved, overage_month, overage, _HeldPlan(bool(allows_overage), cap), cap
    )


def _reserve_organization(
    *, organization_id: int, requests: list[HoldRequest], now: datetime
) -> dict[int, bool]:
    held_row = _lock_for_reserve(organization_id)
    # Everything the decision needs, in one statement. It runs after the lock (not as part of
    # the locking SELECT), so on PostgreSQL it sees whatever the transactions we waited for
    # committed: a replay settled meanwhile, an expiry done meanwhile.
    state = _reserve_checks(
        organization_id=organization_id,
        request_ids=list(dict.fromkeys(request.request_id for request in requests)),
        now=now,
        with_credits=held_row.plan.allows_overage,
    )
    # Grants past their date stop counting now, not when the periodic task gets to them.
    # The credits read above already leave them out (they count unexpired grants only).
    if state["due"]:
        org = organization_lock(organization_id=organization_id)
        credits_expire_due_locked(organization=org, now=now)
        held_row.balance_micros = org.balance_micros
    spendable = _spendable_micros(organization=held_row, now=now, credits_micros=state["credits"])
    decided: dict[int, bool] = {}
    held: dict[str, HoldRequest] = {}
    for request in requests:
        # A request already held, or already settled (a replay), holds nothing more.
        if (
            request.request_id in state["held"]
            or request.request_id in state["settled"]
            or request.request_id in held
        ):
            decided[id(request)] = True
            continue
        if request.amount_micros > spendable:
            decided[id(request)] = False
            continue
        spendable -= request.amount_micros
        held[request.request_id] = request
        decided[id(request)] = True
    if held:
        _insert_reservations(
            list(held.values()),
            organization_id=organization_id,
            total_micros=sum(request.amount_micros for request in held.values()),
            now=now,
        )
    return decided


def _insert_reservations(
    requests: list[HoldRequest], *, organization_id: int, total_micros: int, now: datetime
) -> None:
    """The reservation rows, and the organization's reserved_micros raised by their total."""
    moment = db_moment(now)
    row = "(" + ", ".join(["%s"] * len(_RESERVATION_COLUMNS)) + ")"
    params: list = []
    for r in requests:
        params += [
            r.request_id,
            r.organization_id,
            r.amount_micros,
            moment,
            r.holder,
            r.user_id,
            r.api_key_prefix,
            r.team,
            r.project,
            r.model,
            r.source,
            r.prompt_tokens,
            r.input_price_micros,
            r.output_price_micros,
        ]
    insert = (
        f"INSERT INTO {Reservation._meta.db_table} ({', '.join(_RESERVATION_COLUMNS)})"
        f" VALUES {', '.join([row] * len(requests))}"
    )
    update = f"UPDATE {_ORG} SET reserved_micros = reserved_micros + %s WHERE id = %s"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # One statement (a data-modifying WITH), one round trip.
            cursor.execute(
                f"WITH held AS ({insert} RETURNING 1) {update}",
                [*params, total_micros, organization_id],
            )
        else:
            cursor.execute(insert, params)
            cursor.execute(update, [total_micros, organization_id])


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
