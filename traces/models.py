"""Calls (one per gateway chat completion or OpenTelemetry span), their bodies, and sessions.

`traces` knows organizations, projects and users by id (and team/project by name at call
time), like `billing`: no foreign keys, so a partitioned table stays cheap to write and to
prune. On PostgreSQL `traces_call` and `traces_call_body` are partitioned by month on
`started_at` (see migrations/0001 and partitions.py), which is why `started_at` is part of the
primary key: PostgreSQL wants the partition key in every unique index.
"""

from django.db import models


class Call(models.Model):
    """Who called what, when, how it went and what it cost; the bodies live in CallBody."""

    class Source(models.TextChoices):
        API = "api", "API"
        PLAYGROUND = "playground", "Playground"
        COMPARE = "compare", "Compare"
        EVALUATION = "evaluation", "Evaluation"
        OTEL = "otel", "OpenTelemetry"

    class Status(models.TextChoices):
        OK = "ok", "OK"
        ERROR = "error", "Error"
        CANCELLED = "cancelled", "Cancelled"
        LOST = "lost", "Lost"

    pk = models.CompositePrimaryKey("started_at", "project_id", "span_id")
    started_at = models.DateTimeField()
    project_id = models.BigIntegerField()
    span_id = models.CharField(max_length=16)  # lowercase W3C hex
    trace_id = models.CharField(max_length=32)
    parent_span_id = models.CharField(max_length=16, blank=True)
    # The gateway's request id (chatcmpl-...); blank for OpenTelemetry spans.
    request_id = models.CharField(max_length=64, blank=True)
    organization_id = models.BigIntegerField()
    user_id = models.BigIntegerField(null=True)
    team = models.CharField(max_length=100)
    project = models.CharField(max_length=100)
    api_key_prefix = models.CharField(max_length=32, blank=True)
    source = models.CharField(max_length=12, choices=Source.choices, default=Source.API)
    op_name = models.CharField(max_length=200, default="chat.completions")
    model = models.CharField(max_length=200, blank=True)
    deployment = models.CharField(max_length=200, blank=True)
    stream = models.BooleanField(default=False)
    finish_reason = models.CharField(max_length=32, blank=True)
    session_id = models.CharField(max_length=32, blank=True)
    pane = models.CharField(max_length=16, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.OK)
    http_status = models.PositiveSmallIntegerField(default=200)
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.CharField(max_length=500, blank=True)
    first_token_at = models.DateTimeField(null=True)
    ended_at = models.DateTimeField(null=True)
    duration_ms = models.PositiveIntegerField(default=0)
    ttft_ms = models.PositiveIntegerField(null=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    tokens_counted_by_gateway = models.BooleanField(default=False)
    # The ledger's charge for this request, copied in the transaction that wrote the usage row
    # (never computed here); NULL for spans that did not go through the gateway.
    cost_micros = models.BigIntegerField(null=True)
    attributes = models.JSONField(default=dict)
    has_body = models.BooleanField(default=False)

    class Meta:
        db_table = "traces_call"
        indexes = [
            models.Index(
                fields=["project_id", "-started_at", "-span_id"], name="traces_call_project_time"
            ),
            models.Index(
                fields=["project_id", "model", "-started_at"], name="traces_call_model_time"
            ),
            models.Index(
                fields=["project_id", "user_id", "-started_at"], name="traces_call_user_time"
            ),
            models.Index(
                fields=["project_id", "status", "-started_at"],
                name="traces_call_status_time",
                condition=~models.Q(status="ok"),
            ),
            models.Index(fields=["project_id", "trace_id"], name="traces_call_trace"),
            # A call's page and Open in Playground look a call up by its span id.
            models.Index(fields=["project_id", "span_id"], name="traces_call_span"),
            models.Index(
                fields=["request_id"],
                name="traces_call_request",
                condition=~models.Q(request_id=""),
            ),
            models.Index(
                fields=["project_id", "session_id", "started_at"],
                name="traces_call_session",
                condition=~models.Q(session_id=""),
            ),
            models.Index(fields=["organization_id", "started_at"], name="traces_call_org_time"),
        ]

    def __str__(self) -> str:
        return f"{self.op_name} {self.span_id}"


class CallBody(models.Model):
    """A call's request and answer, apart from Call so that listing calls never reads a
    100k-token conversation."""

    pk = models.CompositePrimaryKey("started_at", "project_id", "span_id")
    started_at = models.DateTimeField()
    project_id = models.BigIntegerField()
    span_id = models.CharField(max_length=16)
    # The client's request body (messages, parameters, tools, response_format); never headers.
    inputs = models.JSONField(default=dict)
    # {"content", "tool_calls", "finish_reason"} (or an OpenTelemetry span's output).
    output = models.JSONField(default=dict)
    # Lowercased last user message and answer, for the Traces page's text search.
    search_text = models.TextField(blank=True)

    class Meta:
        db_table = "traces_call_body"


class Session(models.Model):
    """A Playground chat or a Compare: its layout; its messages are its calls' bodies."""

    class Kind(models.TextChoices):
        CHAT = "chat", "Chat"
        COMPARE = "compare", "Compare"

    id = models.CharField(max_length=32, primary_key=True)
    organization_id = models.BigIntegerField()
    project_id = models.BigIntegerField()
    user_id = models.BigIntegerField()
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.CHAT)
    title = models.CharField(max_length=200, blank=True)
    trace_id = models.CharField(max_length=32)
    # {"system_prompt", "params", "panes": [{"pane", "model", "params"}]}
    layout = models.JSONField(default=dict)
    copied_from = models.CharField(max_length=32, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "traces_session"
        indexes = [
            models.Index(
                fields=["project_id", "user_id", "-updated_at"], name="traces_session_recent"
            ),
            models.Index(fields=["organization_id", "updated_at"], name="traces_session_org"),
        ]


class RetentionPolicy(models.Model):
    """How many days an organization's calls are kept (no row: settings.TRACE_RETENTION_DAYS)."""

    organization_id = models.BigIntegerField(unique=True)
    days = models.PositiveIntegerField()

    class Meta:
        db_table = "traces_retention_policy"
