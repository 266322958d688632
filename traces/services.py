"""Writing calls. Gateway calls are written by the transaction that writes their usage rows
(inference_app.gateway.settlement), so a call and its charge exist together or not at all, and
its cost is the ledger's."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction

from traces.cleaning import clamp_int, clean_json, clean_text
from traces.models import Call, CallBody
from traces.partitions import month_of, partitions_ready_for
from traces.reports import CallReport

log = logging.getLogger(__name__)

SEARCH_TEXT_CHARS = 4000
_TEXT_LIMITS = {
    field.name: field.max_length
    for field in Call._meta.concrete_fields
    if getattr(field, "max_length", None) and field.get_internal_type() == "CharField"
}


def calls_record(*, reports: Sequence[CallReport], costs: Mapping[str, int] | None = None) -> None:
    """Write `reports` (and their bodies), in the caller's transaction if there is one.

    `costs` maps a request id to the ledger's charge for it. A row the database refuses for
    its content is written again without its body, then left out (logged): a trace must never
    stop the usage rows it is written with.
    """
    if not reports:
        return
    costs = costs or {}
    for month in {month_of(report.started_at) for report in reports}:
        partitions_ready_for(month)
    try:
        with transaction.atomic():
            _insert(reports, costs, with_bodies=True)
        return
    except (OperationalError, InterfaceError):
        raise  # the database is away: the whole settlement is retried
    except DatabaseError:
        log.exception("writing %d calls failed; again without bodies", len(reports))
    try:
        with transaction.atomic():
            _insert(reports, costs, with_bodies=False)
    except (OperationalError, InterfaceError):
        raise
    except DatabaseError:
        log.exception("writing %d calls failed; left out", len(reports))


def _insert(reports: Sequence[CallReport], costs: Mapping[str, int], *, with_bodies: bool):
    calls, bodies = [], []
    for report in reports:
        has_body = with_bodies and (report.inputs is not None or report.output is not None)
        calls.append(call_row(report, cost_micros=costs.get(report.request_id), has_body=has_body))
        if has_body:
            bodies.append(body_row(report))
    _insert_rows(Call, calls)
    if bodies:
        _insert_rows(CallBody, bodies)


def _insert_rows(model, rows: list) -> None:
    """One prepared INSERT run for every row (executemany): bulk_create compiles its SQL anew
    for each batch, which was most of what tracing cost a request (docs/benchmarks.md). Values
    go through each field's own preparation, as the ORM's would. A row whose key is already
    there (an exporter's retry racing its first send) is kept once."""
    fields = model._meta.concrete_fields
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    marks = ", ".join(_placeholder(field) for field in fields)
    sql = (
        f"INSERT INTO {connection.ops.quote_name(model._meta.db_table)} ({columns})"
        f" VALUES ({marks}) ON CONFLICT DO NOTHING"
    )
    values = [
        [field.get_db_prep_save(getattr(row, field.attname), connection) for field in fields]
        for row in rows
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, values)


def _placeholder(field) -> str:
    if connection.vendor == "postgresql" and field.get_internal_type() == "JSONField":
        return "%s::jsonb"
    return "%s"


def call_row(report: CallReport, *, cost_micros: int | None, has_body: bool) -> Call:
    text = {
        name: clean_text(getattr(report, name) or "", limit) for name, limit in _TEXT_LIMITS.items()
    }
    attributes = clean_json(report.attributes or {})
    if not has_body and (report.inputs is not None or report.output is not None):
        attributes["body_dropped"] = True
    return Call(
        **text,
        started_at=report.started_at,
        project_id=report.project_id,
        organization_id=report.organization_id,
        user_id=report.user_id,
        stream=report.stream,
        http_status=clamp_int(report.http_status, high=32767),
        first_token_at=report.first_token_at,
        ended_at=report.ended_at,
        duration_ms=clamp_int(report.duration_ms),
        ttft_ms=clamp_int(report.ttft_ms),
        prompt_tokens=clamp_int(report.prompt_tokens),
        completion_tokens=clamp_int(report.completion_tokens),
        tokens_counted_by_gateway=report.tokens_counted_by_gateway,
        cost_micros=cost_micros,
        attributes=attributes,
        has_body=has_body,
    )


def body_row(report: CallReport) -> CallBody:
    inputs = clean_json(report.inputs or {})
    output = clean_json(report.output or {})
    return CallBody(
        started_at=report.started_at,
        project_id=report.project_id,
        span_id=report.span_id,
        inputs=inputs,
        output=output,
        search_text=search_text_of(inputs, output),
    )


def search_text_of(inputs: dict, output: dict) -> str:
    """The last user message and the answer, lowercased, for the Traces page's search."""
    parts = []
    messages = inputs.get("messages") if isinstance(inputs, dict) else None
    if isinstance(messages, list):
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("role") == "user":
                parts.append(_text_of(message.get("content")))
                break
    elif isinstance(inputs, dict) and inputs.get("text"):
        parts.append(str(inputs["text"]))
    if isinstance(output, dict):
        parts.append(_text_of(output.get("content")))
    half = SEARCH_TEXT_CHARS // 2
    return "\n".join(part[:half] for part in parts if part).lower()


def _text_of(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""
