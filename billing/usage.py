"""Settling a request: its one usage row, its charge, and the release of its reservation."""

import dataclasses
from datetime import datetime

from django.db import transaction
from django.db.models import F

from billing.models import Organization, UsageRecord
from billing.quota import _release_locked

TOKENS_PER_PRICE_UNIT = 1_000_000  # prices are per million tokens


@dataclasses.dataclass(frozen=True)
class UsageReport:
    """What the gateway knows about a finished (or failed, or cancelled) request."""

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
    """Write the request's usage row and charge it, once. Replaying the same request id is a no-op."""
    cost = usage_cost_micros(
        prompt_tokens=report.prompt_tokens,
        completion_tokens=report.completion_tokens,
        input_price_micros=report.input_price_micros,
        output_price_micros=report.output_price_micros,
    )
    fields = dataclasses.asdict(report)
    with transaction.atomic():
        record, created = UsageRecord.objects.get_or_create(
            request_id=report.request_id,
            defaults={**fields, "cost_micros": cost},
        )
        if created:
            _release_locked(report.request_id)
            if cost:
                Organization.objects.filter(pk=report.organization_id).update(
                    balance_micros=F("balance_micros") - cost
                )
    return record
