"""A chat completion's trace call (traces.CallReport), next to its usage row.

The gateway builds a call's report when the call finishes, from what ChatCall kept on the way
(references to the request and the answer's parts: no copies, no JSON work there), and hands it
to settlement with the usage report; both rows are written in one transaction, the call's cost
being the usage row's (the ledger's charge). A usage row written by anything else (the
lost-request sweep, settle_usage called directly) gets a metadata-only call from the row alone
(calls_record_minimal, billing.usage.default_on_written): every usage row has exactly one call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

from django.conf import settings

from billing.models import UsageRecord
from billing.usage import UsageReport
from inference_app.models import Project
from traces.reports import CallReport, new_span_id, new_trace_id
from traces.services import calls_record

if TYPE_CHECKING:
    from inference_app.gateway.pipeline import ChatCall

# A project whose names no longer match one (renamed, deleted, or a test's made-up names).
UNKNOWN_PROJECT_ID = 0
LOST_MESSAGE = "The process serving this request stopped before it finished."


def call_report(call: ChatCall, usage: UsageReport) -> CallReport:
    """`call`'s report, from the same finish as its usage report `usage` (status, tokens,
    times), so the two rows agree."""
    caller = call.caller
    trace = call.trace
    ttft = usage.time_to_first_token_ms
    return CallReport(
        started_at=usage.created_at,
        project_id=caller.project_id,
        span_id=call.span_id,
        trace_id=call.trace_id,
        parent_span_id=call.parent_span_id,
        organization_id=caller.organization_id,
        team=caller.team,
        project=caller.project,
        request_id=call.request_id,
        user_id=caller.user_id,
        api_key_prefix=caller.api_key_prefix,
        source=caller.source,
        model=call.model,
        deployment=usage.deployment,
        stream=call.stream,
        finish_reason=call.finish_reason or "",
        session_id=trace.session_id if trace else "",
        pane=trace.pane if trace else "",
        status=usage.status,
        http_status=usage.http_status,
        error_code=usage.error_code,
        error_message=call.error_message,
        # From the same clock as time_to_first_token_ms, so the two always agree.
        first_token_at=usage.created_at + timedelta(milliseconds=ttft)
        if ttft is not None
        else None,
        ended_at=usage.finished_at,
        duration_ms=usage.duration_ms,
        ttft_ms=ttft,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        tokens_counted_by_gateway=usage.tokens_counted_by_gateway,
        attributes=_attributes_of(call.request_body),
        inputs=call.request_body if call.keeps_body else None,
        output=_output_of(call) if call.keeps_body else None,
    )


# Sampling parameters kept with the call's metadata (also when bodies are off): small, and
# what the Traces page shows without reading a body.
_PARAMETERS = (
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "n",
    "seed",
    "stop",
    "presence_penalty",
    "frequency_penalty",
)


def _attributes_of(body: dict) -> dict:
    return {name: body[name] for name in _PARAMETERS if name in body}


def _output_of(call: ChatCall) -> dict:
    """{"content", "tool_calls", "finish_reason"} of the first choice, and every choice under
    "choices" when there are several."""
    if call.answer_choices is not None:  # a plain answer: its choices, by reference
        choices = [
            _message_choice(choice) for choice in call.answer_choices if isinstance(choice, dict)
        ]
    else:
        choices = [
            {
                "index": index,
                "content": "".join(call.answer_deltas.get(index, ())),
                "tool_calls": _merged_tool_calls(call.answer_tool_deltas.get(index, ())),
                "finish_reason": call.answer_finish_reasons.get(index),
            }
            for index in sorted(call.answer_deltas.keys() | call.answer_tool_deltas.keys())
        ]
    first = choices[0] if choices else {}
    output = {
        "content": first.get("content") or "",
        "tool_calls": first.get("tool_calls") or None,
        "finish_reason": first.get("finish_reason") or call.finish_reason,
    }
    if len(choices) > 1:
        output["choices"] = choices
    return output


def _message_choice(choice: dict) -> dict:
    message = choice.get("message") or {}
    return {
        "index": choice.get("index", 0),
        "content": message.get("content"),
        "tool_calls": message.get("tool_calls"),
        "finish_reason": choice.get("finish_reason"),
    }


def _merged_tool_calls(deltas: Sequence[list]) -> list[dict] | None:
    """A stream's tool-call fragments as whole calls: id, type and name as first given, the
    arguments' pieces joined (OpenAI's streaming shape: fragments keyed by `index`)."""
    merged: dict[int, dict] = {}
    for fragments in deltas:
        for fragment in fragments if isinstance(fragments, list) else ():
            if not isinstance(fragment, dict):
                continue
            index = fragment.get("index", len(merged))
            tool = merged.setdefault(
                index, {"id": "", "type": "function", "function": {"name": "", "arguments": ""}}
            )
            if fragment.get("id"):
                tool["id"] = fragment["id"]
            if fragment.get("type"):
                tool["type"] = fragment["type"]
            function = fragment.get("function") or {}
            if isinstance(function, dict):
                if function.get("name"):
                    tool["function"]["name"] += str(function["name"])
                if function.get("arguments"):
                    tool["function"]["arguments"] += str(function["arguments"])
    return list(merged.values()) or None


def calls_record_for(records: Sequence[UsageRecord], calls: Mapping[str, CallReport]) -> None:
    """Write the calls of the usage rows just written (`records`), in their transaction, each
    with its row's cost; a row without a gateway report gets a metadata-only call."""
    if not settings.TRACES_ENABLED or not records:
        return
    reports = []
    missing = []
    for record in records:
        report = calls.get(record.request_id)
        if report is None:
            missing.append(record)
        else:
            reports.append(report)
    if missing:
        reports.extend(minimal_reports(missing))
    calls_record(
        reports=reports, costs={record.request_id: record.cost_micros for record in records}
    )


def calls_record_minimal(records: Sequence[UsageRecord]) -> None:
    """billing.usage.default_on_written: a metadata-only call for each usage row written
    without a gateway report (the lost-request sweep, settle_usage called directly)."""
    calls_record_for(records, {})


def minimal_reports(records: Sequence[UsageRecord]) -> list[CallReport]:
    project_ids = _project_ids(records)
    reports = []
    for record in records:
        lost = record.status == UsageRecord.Status.LOST
        ttft = record.time_to_first_token_ms
        started_at = record.created_at
        reports.append(
            CallReport(
                started_at=started_at,
                project_id=project_ids.get((record.team, record.project), UNKNOWN_PROJECT_ID),
                span_id=new_span_id(),
                trace_id=new_trace_id(),
                organization_id=record.organization_id,
                team=record.team,
                project=record.project,
                request_id=record.request_id,
                user_id=record.user_id,
                api_key_prefix=record.api_key_prefix,
                source=record.source,
                model=record.model,
                deployment=record.deployment,
                status=record.status,
                http_status=record.http_status,
                error_code=record.error_code,
                error_message=LOST_MESSAGE if lost else "",
                first_token_at=started_at + timedelta(milliseconds=ttft)
                if ttft is not None
                else None,
                ended_at=record.finished_at,
                duration_ms=record.duration_ms,
                ttft_ms=ttft,
                prompt_tokens=record.prompt_tokens,
                completion_tokens=record.completion_tokens,
                tokens_counted_by_gateway=record.tokens_counted_by_gateway,
                attributes={"process_lost": True} if lost else {},
            )
        )
    return reports


def _project_ids(records: Sequence[UsageRecord]) -> dict[tuple[str, str], int]:
    """(team, project) names -> project id, in one query (team names are unique, project
    names unique within a team)."""
    teams = {record.team for record in records}
    names = {record.project for record in records}
    rows = Project.objects.filter(team__name__in=teams, name__in=names).values_list(
        "team__name", "name", "pk"
    )
    return {(team, name): pk for team, name, pk in rows}
