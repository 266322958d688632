"""Settling a request: its one usage row, its charge, and the release of its reservation."""

import dataclasses
from collections.abc import Callable, Sequence
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
from billing.ledger import ledger_append_many, month_start, organization_lock
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
    # The hold the request was admitted with: its charge never passes it, whatever the engine
    # reports (an engine may count more prompt tokens than the gateway's estimate; the hold is
    # what the organization agreed to spend, and a Free balance or a Pro cap must hold).
    max_cost_micros: int | None = None


def usage_cost_micros(
    *, prompt_tokens: int, completion_tokens: int, input_price_micros: int, output_price_micros: int
) -> int:
    """Cost in micro-dollars, rounded up so that no fraction of a token is given away."""
    numerator = prompt_tokens * input_price_micros + completion_tokens * output_price_micros
    return -(-numerator // TOKENS_PER_PRICE_UNIT)


def settle_usage(report: UsageReport) -> UsageRecord | None:
    """Write the request's usage row and charge it, once. Replaying the same request id is a no-op.

    The charge is tokens x the prices in the report (the prices that applied when the request
    ran); it uses credits soonest-expiring first, and whatever no credit covers is overage.
    The request's reservation is released in the same transaction.
    """
    return settle_usage_batch([report])[0]


# Called in the settling transaction with the usage rows written by it (replays excluded), when
# the caller passes no `on_written` of its own. The traces app sets it (inference_app.apps), so
# every usage row has its call row, whoever settles it (the gateway, the lost-request sweep),
# while billing knows nothing of traces.
WrittenHook = Callable[[list[UsageRecord]], None]
default_on_written: WrittenHook | None = None


def settle_usage_batch(
    reports: Sequence[UsageReport], *, on_written: WrittenHook | None = None
) -> list[UsageRecord | None]:
    """settle_usage for many reports in one transaction; returns their rows in the same order.

    Per organization: one lock, one statement for what settling needs to know, one INSERT of the
    usage rows, one of the ledger entries and one UPDATE of the organization, however many
    reports. The result is the same as settling the reports one by one in order (a request id
    seen twice, here or before, is charged once).

    `on_written` (else `default_on_written`) runs in the same transaction with the rows written
    now, each with its final `cost_micros`: what it writes exists exactly when they do.
    """
    by_organization: dict[int, list[UsageReport]] = {}
    for report in reports:
        by_organization.setdefault(report.organization_id, []).append(report)
    now = timezone.now()
    records: dict[str, UsageRecord] = {}
    written: list[UsageRecord] = []
    hook = on_written or default_on_written
    with transaction.atomic():
        # Locks taken in id order, so two batches never wait on each other in a cycle.
        for organization_id in sorted(by_organization):
            fresh, replayed = _settle_organization(
                organization_id=organization_id,
                reports=by_organization[organization_id],
                now=now,
            )
            records.update(fresh)
            records.update(replayed)
            written.extend(fresh.values())
        if hook is not None and written:
            hook(written)
    # None for a `lost` report whose hold was released meanwhile (nothing to settle).
    return [records.get(report.request_id) for report in reports]


def _settle_organization(
    *, organization_id: int, reports: list[UsageReport], now: datetime
) -> tuple[dict[str, UsageRecord], dict[str, UsageRecord]]:
    """The rows written now, and those of replayed request ids (written before)."""
    # The row lock also serialises replays of one request id: the second one waits, then finds
    # the first one's row.
    org = organization_lock(organization_id=organization_id)
    request_ids = list(dict.fromkeys(report.request_id for report in reports))
    # What settling needs to know, read after the lock (see reserve_credits).
    state = _settle_checks(organization_id=org.pk, request_ids=request_ids, now=now)
    fresh: dict[str, UsageRecord] = {}
    for report in reports:
        if report.request_id in state["settled"] or report.request_id in fresh:
            continue  # a replay: charged once already
        if report.status == UsageRecord.Status.LOST and report.request_id not in state["holds"]:
            continue  # the sweep's guess came too late: its hold was released meanwhile
        fresh[report.request_id] = UsageRecord(
            **_fields_of(report), cost_micros=_cost_micros_of(report)
        )
    UsageRecord.objects.bulk_create(fresh.values())
    # The release of the holds on this organization joins the organization's one UPDATE below;
    # a hold on another organization (a caller's mistake) is released the old way.
    updates = {}
    held_here = {
        request_id: amount
        for request_id, (holder, amount) in state["holds"].items()
        if holder == org.pk
    }
    if held_here:
        # Raw: the ORM's delete() collects the rows first, for signals no one listens to.
        marks = ", ".join(["%s"] * len(held_here))
        with connection.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {Reservation._meta.db_table} WHERE request_id IN ({marks})",
                list(held_here),
            )
        updates["reserved_micros"] = F("reserved_micros") - sum(held_here.values())
    for request_id in state["holds"].keys() - held_here.keys():
        _release_locked(request_id)
    charged = [record for record in fresh.values() if record.cost_micros]
    if charged:
        if state["due"]:
            credits_expire_due_locked(organization=org, now=now)
        _charge_locked(organization=org, records=charged, now=now, updates=updates)
    elif updates:
        Organization.objects.filter(pk=org.pk).update(**updates)
    replayed = {}
    if state["settled"]:
        replayed = {
            record.request_id: record
            for record in UsageRecord.objects.filter(request_id__in=state["settled"])
        }
    return fresh, replayed


_RECORD_FIELDS = [
    field.name for field in dataclasses.fields(UsageReport) if field.name != "max_cost_micros"
]


def _fields_of(report: UsageReport) -> dict:
    # dataclasses.asdict deep-copies every value (its datetimes too): measurable per row.
    return {name: getattr(report, name) for name in _RECORD_FIELDS}


def _cost_micros_of(report: UsageReport) -> int:
    cost = usage_cost_micros(
        prompt_tokens=report.prompt_tokens,
        completion_tokens=report.completion_tokens,
        input_price_micros=report.input_price_micros,
        output_price_micros=report.output_price_micros,
    )
    if report.max_cost_micros is not None:
        cost = min(cost, report.max_cost_micros)
    return cost


def _settle_checks(*, organization_id: int, request_ids: list[str], now: datetime) -> dict:
    """settled (ids already charged: replays), holds (request id -> (organization id, amount)),
    due (a grant to expire), in one statement."""
    marks = ", ".join(["%s"] * len(request_ids))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT 1, request_id, NULL, NULL FROM {UsageRecord._meta.db_table}"
            f" WHERE request_id IN ({marks})"
            " UNION ALL"
            f" SELECT 2, request_id, organization_id, amount_micros"
            f" FROM {Reservation._meta.db_table} WHERE request_id IN ({marks})"
            " UNION ALL"
            f" SELECT 3, NULL, NULL, NULL WHERE {GRANT_DUE_EXISTS_SQL}",
            [*request_ids, *request_ids, organization_id, db_moment(now)],
        )
        rows = cursor.fetchall()
    return {
        "settled": {request_id for kind, request_id, _, _ in rows if kind == 1},
        "holds": {
            request_id: (holder, amount) for kind, request_id, holder, amount in rows if kind == 2
        },
        "due": any(kind == 3 for kind, _, _, _ in rows),
    }


def _charge_locked(
    *, organization: Organization, records: list[UsageRecord], now: datetime, updates: dict
) -> None:
    """Charge the records, in order; `updates` are other organization columns to set by the
    same UPDATE.

    Credits go to the earliest records first, so each ledger entry's overage is what it would
    be had the records been charged one by one.
    """
    total = sum(record.cost_micros for record in records)
    uncovered = credits_consume_locked(organization=organization, amount_micros=total, now=now)
    if not organization.plan.allows_overage:
        # Without overage (Free, Academic) what no grant covers comes out of the balance (an
        # operator's adjustment, say): it is never overage, so never invoiced.
        uncovered = 0
    if uncovered:
        month = month_start(now)
        if organization.overage_month == month:
            updates["overage_micros"] = F("overage_micros") + uncovered
        else:
            updates["overage_month"] = month
            updates["overage_micros"] = uncovered
    covered_left = total - uncovered
    entries = []
    for record in records:
        covered = min(record.cost_micros, covered_left)
        covered_left -= covered
        entries.append(
            LedgerEntry(
                kind=LedgerEntry.Kind.CHARGE,
                amount_micros=-record.cost_micros,
                request_id=record.request_id,
                overage_micros=record.cost_micros - covered,
                note=record.model,
                created_at=now,
            )
        )
    ledger_append_many(organization=organization, entries=entries, organization_updates=updates)
