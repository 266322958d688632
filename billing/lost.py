"""Requests whose process died: settled from their reservations as `lost`, never forgotten.

Every request is reserved before it reaches an engine, and its reservation names the process
that runs it (the holder) and what is known of it (who, which model, the prompt's size). A
running process beats its holder's heartbeat every few seconds. A reservation older than
LOST_AFTER whose holder has not beaten for that long belongs to a process that was killed or
crashed: nothing else will settle it, so the sweep does, with a usage row of status `lost`
charged for the prompt (the completion, if any, died with the process) and the hold released
in the same transaction. Replays are harmless: a request settled meanwhile is not charged twice.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from billing.models import Reservation, ReservationHolder, UsageRecord
from billing.quota import release_reservation
from billing.usage import UsageReport, settle_usage_batch

# A holder silent this long is dead. Several heartbeats long, so a process busy for a moment
# (a long GC pause, a slow disk) is not taken for dead.
LOST_AFTER = timedelta(seconds=settings.LOST_AFTER_SECONDS)
# Holders not seen for this long are forgotten (their reservations were swept long before).
HOLDER_FORGET_AFTER = timedelta(days=1)
SWEEP_BATCH = 500


def reservation_holder_beat(*, token: str, now: datetime | None = None) -> None:
    """Record that the process `token` is alive (creates its row on the first beat)."""
    now = now or timezone.now()
    if not ReservationHolder.objects.filter(token=token).update(last_seen_at=now):
        ReservationHolder.objects.update_or_create(
            token=token,
            defaults={"last_seen_at": now, "host": socket.gethostname()[:255], "pid": os.getpid()},
        )


def reservation_holder_forget(*, token: str) -> None:
    """The process `token` stops cleanly: it settled what it held and beats no more."""
    ReservationHolder.objects.filter(token=token).delete()


def reservations_settle_lost(*, now: datetime | None = None) -> int:
    """Settle the reservations of dead holders as `lost`; returns how many. Safe any time."""
    now = now or timezone.now()
    cutoff = now - LOST_AFTER
    alive = ReservationHolder.objects.filter(last_seen_at__gte=cutoff).values("token")
    settled = 0
    while True:
        orphans = list(
            Reservation.objects.filter(created_at__lt=cutoff)
            .exclude(holder__in=alive)
            .order_by("created_at", "pk")[:SWEEP_BATCH]
        )
        if not orphans:
            break
        reports = [_lost_report(r, now=now) for r in orphans if r.model]
        if reports:
            settle_usage_batch(reports)
        for reservation in orphans:
            if not reservation.model:
                # Held without a write-ahead record (a credit slice of an older version):
                # nothing to charge, only the hold to give back.
                release_reservation(request_id=reservation.request_id)
        settled += len(orphans)
        if len(orphans) < SWEEP_BATCH:
            break
    ReservationHolder.objects.filter(last_seen_at__lt=now - HOLDER_FORGET_AFTER).delete()
    return settled


def _lost_report(reservation: Reservation, *, now: datetime) -> UsageReport:
    duration_ms = int((now - reservation.created_at).total_seconds() * 1000)
    return UsageReport(
        request_id=reservation.request_id,
        organization_id=reservation.organization_id,
        user_id=reservation.user_id,
        api_key_prefix=reservation.api_key_prefix,
        team=reservation.team,
        project=reservation.project,
        model=reservation.model,
        deployment="",
        source=reservation.source or UsageRecord.Source.API,
        status=UsageRecord.Status.LOST,
        http_status=0,
        error_code="process_lost",
        prompt_tokens=reservation.prompt_tokens,
        completion_tokens=0,
        tokens_counted_by_gateway=True,
        time_to_first_token_ms=None,
        duration_ms=min(duration_ms, 2**31 - 1),
        input_price_micros=reservation.input_price_micros,
        output_price_micros=reservation.output_price_micros,
        created_at=reservation.created_at,
        finished_at=now,
        max_cost_micros=reservation.amount_micros,
    )
