"""Rows for the Traces pages' tests: members with a project, and calls written through the
real write service (traces.services.calls_record), as the gateway writes them."""

from __future__ import annotations

import itertools
import secrets
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.utils import timezone

from billing.models import Membership
from billing.organizations import membership_set, organization_create
from inference_app.accounts import default_project_set, project_create, team_add_member, team_create
from traces.reports import CallReport
from traces.services import calls_record

PASSWORD = "pw-123456789"
MODEL = "meta-llama/Llama-3.1-8B-Instruct"
OTHER_MODEL = "microsoft/Phi-4-mini-instruct"
_counter = itertools.count(1)


def make_org(name: str):
    return organization_create(name=name, slug=f"{name.lower()}-{secrets.token_hex(3)}")


def make_member(username: str, *, org=None, role: str = Membership.Role.MEMBER, team=None):
    """A user in `org` (a new one by default) and in `team` (a new team with a "main" project
    by default); returns (user, project)."""
    user = get_user_model().objects.create_user(username=username, password=PASSWORD)
    org = org or make_org(f"Org{next(_counter)}")
    membership_set(organization=org, user=user, role=role)
    if team is None:
        team = team_create(organization=org, name=f"team-{username}")
        project = project_create(team=team, name="main")
    else:
        project = team.projects.order_by("pk").first()
    team_add_member(team=team, user=user)
    default_project_set(user=user, project=project)
    return user, project


def record_call(
    project,
    *,
    started_at: datetime | None = None,
    ago: timedelta = timedelta(minutes=5),
    model: str = MODEL,
    source: str = "api",
    status: str = "ok",
    duration_ms: int = 800,
    ttft_ms: int | None = 120,
    cost_micros: int | None = 1_234,
    user=None,
    prompt: str = "Hello there",
    answer: str = "General Kenobi",
    bodies: bool = True,
    inputs: dict | None = None,
    trace_id: str | None = None,
    span_id: str | None = None,
    parent_span_id: str = "",
    op_name: str = "chat.completions",
    prompt_tokens: int = 12,
    completion_tokens: int = 34,
    error_message: str = "",
) -> CallReport:
    started_at = started_at or timezone.now() - ago
    gateway = source != "otel"
    request_id = f"chatcmpl-{secrets.token_hex(8)}" if gateway else ""
    if inputs is None:
        inputs = {
            "model": model,
            "messages": [{"role": "user", "content": prompt}],
            "temperature": 0.7,
            "max_tokens": 256,
        }
    report = CallReport(
        started_at=started_at,
        project_id=project.pk,
        span_id=span_id or secrets.token_hex(8),
        trace_id=trace_id or secrets.token_hex(16),
        parent_span_id=parent_span_id,
        organization_id=project.team.organization_id,
        team=project.team.name,
        project=project.name,
        request_id=request_id,
        user_id=user.pk if user is not None else None,
        api_key_prefix="ys-abc" if gateway else "",
        source=source,
        op_name=op_name,
        model=model,
        deployment="fake-fast" if gateway else "",
        status=status,
        http_status=200 if status == "ok" else 502,
        error_code="" if status == "ok" else "engine_error",
        error_message=error_message,
        first_token_at=started_at + timedelta(milliseconds=ttft_ms)
        if ttft_ms is not None
        else None,
        ended_at=started_at + timedelta(milliseconds=duration_ms),
        duration_ms=duration_ms,
        ttft_ms=ttft_ms,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        finish_reason="stop" if gateway else "",
        stream=bool(inputs.get("stream")),
        inputs=inputs if bodies else None,
        output={"content": answer, "finish_reason": "stop"} if bodies else None,
    )
    costs = {request_id: cost_micros} if gateway and cost_micros is not None else {}
    calls_record(reports=[report], costs=costs)
    return report


def listed(response) -> list[str]:
    """The span ids of the rows on a Traces list page, in order."""
    html = response.content.decode()
    return [part[:16] for part in html.split('data-testid="call-')[1:]]
