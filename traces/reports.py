"""What a writer hands to traces: one finished call (CallReport) and where it belongs in a
trace (TraceContext)."""

from __future__ import annotations

import dataclasses
import secrets
from datetime import datetime


def new_trace_id() -> str:
    return secrets.token_hex(16)


def new_span_id() -> str:
    return secrets.token_hex(8)


@dataclasses.dataclass(frozen=True)
class TraceContext:
    """Where a gateway call goes: a client's W3C traceparent, or a Playground session."""

    trace_id: str
    parent_span_id: str = ""
    session_id: str = ""
    pane: str = ""


@dataclasses.dataclass
class CallReport:
    """One call, as the writer knows it. Holds references (the request body, the answer's
    parts), not copies: cleaning and serialising happen off the request path (services.py).

    No cost: a gateway call's cost is the ledger's, given to calls_record by the transaction
    that wrote the usage row.
    """

    started_at: datetime
    project_id: int
    span_id: str
    trace_id: str
    organization_id: int
    team: str
    project: str
    parent_span_id: str = ""
    request_id: str = ""
    user_id: int | None = None
    api_key_prefix: str = ""
    source: str = "api"
    op_name: str = "chat.completions"
    model: str = ""
    deployment: str = ""
    stream: bool = False
    finish_reason: str = ""
    session_id: str = ""
    pane: str = ""
    status: str = "ok"
    http_status: int = 200
    error_code: str = ""
    error_message: str = ""
    first_token_at: datetime | None = None
    ended_at: datetime | None = None
    duration_ms: int = 0
    ttft_ms: int | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tokens_counted_by_gateway: bool = False
    attributes: dict = dataclasses.field(default_factory=dict)
    # None: no body stored (the project switched bodies off, or there was none).
    inputs: dict | None = None
    output: dict | None = None
