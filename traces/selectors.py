"""Reading calls. Every selector is scoped to projects the caller may read."""

from __future__ import annotations

from traces.models import Call


def call_by_request_id(*, project_id: int, request_id: str) -> Call | None:
    """The gateway call with this request id in this project (None: unknown here, or not
    written yet: rows are written a moment after the response)."""
    return Call.objects.filter(project_id=project_id, request_id=request_id).first()
