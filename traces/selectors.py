"""Reading calls. Every selector is scoped to projects the caller may read."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from django.db.models import Exists, OuterRef, Q

from traces.models import Call, CallBody

PAGE_SIZE = 50
TRACE_SPAN_LIMIT = 500


def call_by_request_id(*, project_id: int, request_id: str) -> Call | None:
    """The gateway call with this request id in this project (None: unknown here, or not
    written yet: rows are written a moment after the response)."""
    return Call.objects.filter(project_id=project_id, request_id=request_id).first()


@dataclasses.dataclass(frozen=True)
class CallFilters:
    """What the Traces list is narrowed to. `since` is always set (a text search without a
    time range would read every body the project ever stored)."""

    since: datetime
    until: datetime | None = None
    model: str = ""
    source: str = ""
    status: str = ""
    user_id: int | None = None
    min_latency_ms: int | None = None
    min_cost_micros: int | None = None
    q: str = ""
    # Sessions whose calls are not shown (a blind arena battle not voted on yet).
    hidden_sessions: frozenset[str] = frozenset()


@dataclasses.dataclass(frozen=True)
class Cursor:
    """The last row of a page: the next page starts strictly after it (newest first)."""

    started_at: datetime
    span_id: str

    def __str__(self) -> str:
        # UTC with microseconds and a "Z": readable in a URL, exact to the database's precision.
        return f"{self.started_at.astimezone(UTC):%Y-%m-%dT%H:%M:%S.%fZ}~{self.span_id}"

    @classmethod
    def parse(cls, text: str) -> Cursor | None:
        """None for anything that is not `<iso time>~<span id>`."""
        when, tilde, span_id = text.partition("~")
        if not tilde or not span_id or len(span_id) > 16:
            return None
        try:
            started_at = datetime.fromisoformat(when)
        except ValueError:
            return None
        if started_at.tzinfo is None:
            started_at = started_at.replace(tzinfo=UTC)
        return cls(started_at=started_at, span_id=span_id)


@dataclasses.dataclass(frozen=True)
class CallsPage:
    calls: list[Call]
    next_cursor: Cursor | None


def _filtered(project_id: int, filters: CallFilters):
    calls = Call.objects.filter(project_id=project_id, started_at__gte=filters.since)
    if filters.until is not None:
        calls = calls.filter(started_at__lt=filters.until)
    if filters.hidden_sessions:
        calls = calls.exclude(session_id__in=filters.hidden_sessions)
    if filters.model:
        calls = calls.filter(model=filters.model)
    if filters.source:
        calls = calls.filter(source=filters.source)
    if filters.status:
        calls = calls.filter(status=filters.status)
    if filters.user_id is not None:
        calls = calls.filter(user_id=filters.user_id)
    if filters.min_latency_ms is not None:
        calls = calls.filter(duration_ms__gte=filters.min_latency_ms)
    if filters.min_cost_micros is not None:
        calls = calls.filter(cost_micros__gte=filters.min_cost_micros)
    if filters.q:
        # search_text is stored lowercased: a plain LIKE (a trigram index on PostgreSQL).
        # The time range on the bodies too: only the months in range are read on PostgreSQL.
        bodies = CallBody.objects.filter(
            started_at__gte=filters.since,
            started_at=OuterRef("started_at"),
            project_id=OuterRef("project_id"),
            span_id=OuterRef("span_id"),
            search_text__contains=filters.q.lower(),
        )
        calls = calls.filter(Exists(bodies))
    return calls


def calls_page(
    *, project_id: int, filters: CallFilters, cursor: Cursor | None, limit: int = PAGE_SIZE
) -> CallsPage:
    """One page of the project's calls, newest first, after `cursor` (keyset pagination: the
    same cost on page 1 and page 1,000, and no row twice when new calls arrive meanwhile)."""
    calls = _filtered(project_id, filters)
    if cursor is not None:
        calls = calls.filter(
            Q(started_at__lt=cursor.started_at)
            | Q(started_at=cursor.started_at, span_id__lt=cursor.span_id)
        )
    rows = list(calls.order_by("-started_at", "-span_id")[: limit + 1])
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = Cursor(started_at=rows[-1].started_at, span_id=rows[-1].span_id)
    return CallsPage(calls=rows, next_cursor=next_cursor)


def call_detail(*, project_ids, span_id: str) -> Call | None:
    """The call `span_id` in one of `project_ids`, with `.body` (its CallBody or None).

    Span ids are unique per project, not across projects (OpenTelemetry clients choose their
    own): with the same id in two readable projects, the newest call wins.
    """
    call = (
        Call.objects.filter(project_id__in=project_ids, span_id=span_id)
        .order_by("-started_at")
        .first()
    )
    if call is None:
        return None
    call.body = None
    if call.has_body:
        call.body = CallBody.objects.filter(
            started_at=call.started_at, project_id=call.project_id, span_id=call.span_id
        ).first()
    return call


def trace_spans(*, project_id: int, trace_id: str, limit: int = TRACE_SPAN_LIMIT) -> list[Call]:
    """The trace's spans in this project, oldest first (at most `limit`)."""
    return list(
        Call.objects.filter(project_id=project_id, trace_id=trace_id).order_by(
            "started_at", "span_id"
        )[:limit]
    )
