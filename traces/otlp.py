"""OpenTelemetry in: OTLP/HTTP trace exports decoded and written as calls (source "otel").

Decoding is opentelemetry-proto's (protobuf, or proto3 JSON once OTLP/JSON's hex ids are made
base64). Each span becomes a CallReport: its name is the op name, its times and status are the
call's, and the GenAI semantic conventions (current `gen_ai.*`, the older `gen_ai.prompt.N.*`
style, and OpenInference's `llm.*`/`input.value`) give model, tokens, finish reason and, when
the project keeps bodies, the conversation. Everything else small and not secret goes to
`attributes`. Knows projects and organizations by id only (no web app imports, like services).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import re
import zlib
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1 import trace_pb2

from traces.models import Call
from traces.reports import CallReport
from traces.retention import retention_days_for
from traces.services import calls_record

MAX_SPANS = 5000
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
# A span may arrive up to a day early (clock skew); later than that, or older than the
# organization's retention, it would be deleted at once or land in a month nobody made.
FUTURE_SLACK = timedelta(days=1)

# Attributes kept on the call: small, never a credential, never a body.
ATTRIBUTES_MAX_KEYS = 64
ATTRIBUTE_VALUE_CHARS = 1000
ATTRIBUTES_MAX_CHARS = 16_000
_SECRET_KEY = re.compile(
    # `token` but not `tokens` (usage counts, max_tokens), `token_count` or `tokenizer`.
    r"authorization|api[-_]?key|cookie|secret|passw|credential|token(?!s|_count|iz)",
    re.IGNORECASE,
)
_SECRET_VALUE = re.compile(r"^\s*bearer\s", re.IGNORECASE)
# Attributes that carry a conversation: bodies (CallBody), never attributes.
_BODY_KEY = re.compile(
    r"^(input\.value|output\.value|gen_ai\.input\.messages|gen_ai\.output\.messages"
    r"|gen_ai\.system_instructions|gen_ai\.prompt|gen_ai\.completion"
    r"|gen_ai\.tool\.call\.(arguments|result)"
    r"|gen_ai\.(prompt|completion)\.\d+\..*|llm\.(input|output)_messages\..*|llm\.prompts.*)$"
)
_INDEXED = re.compile(r"^(gen_ai\.prompt|gen_ai\.completion)\.(\d+)\.(.+)$")
_OPENINFERENCE_MESSAGE = re.compile(r"^llm\.(input|output)_messages\.(\d+)\.message\.(.+)$")
_HEX = re.compile(r"^[0-9a-fA-F]*$")


class UnsupportedContentType(ValueError):
    pass


class UndecodableRequest(ValueError):
    pass


class TooLarge(ValueError):
    pass


@dataclasses.dataclass(frozen=True)
class IngestResult:
    accepted: int
    rejected: int
    message: str = ""


# --- Decoding -------------------------------------------------------------------------------


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def gunzip(body: bytes, *, limit: int) -> bytes:
    """A gzip body inflated, refusing more than `limit` bytes (a small bomb stays small)."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise UndecodableRequest(f"The gzip body could not be inflated: {exc}") from None
    if len(data) > limit or inflater.unconsumed_tail:
        raise TooLarge
    return data


def request_decode(body: bytes, content_type: str | None) -> ExportTraceServiceRequest:
    """The export request in `body` (OTLP/HTTP protobuf or JSON)."""
    kind = media_type(content_type)
    request = ExportTraceServiceRequest()
    if kind == PROTOBUF:
        try:
            request.ParseFromString(body)
        except DecodeError as exc:
            raise UndecodableRequest(f"The protobuf body could not be decoded: {exc}") from None
        return request
    if kind == JSON:
        try:
            document = json.loads(body)
            _hex_ids_to_base64(document)
            json_format.ParseDict(document, request, ignore_unknown_fields=True)
        except (ValueError, json_format.ParseError) as exc:
            raise UndecodableRequest(f"The JSON body could not be decoded: {exc}") from None
        return request
    raise UnsupportedContentType(kind)


def response_encode(result: IngestResult, content_type: str | None) -> bytes:
    """ExportTraceServiceResponse in the request's encoding; partial_success only when some
    spans were rejected (the specification: left unset on full success)."""
    response = ExportTraceServiceResponse()
    if result.rejected:
        response.partial_success.rejected_spans = result.rejected
        response.partial_success.error_message = result.message
    if media_type(content_type) == JSON:
        return json_format.MessageToJson(response, indent=None).encode()
    return response.SerializeToString()


def _hex_ids_to_base64(document) -> None:
    """OTLP/JSON sends trace and span ids as hex; proto3 JSON (json_format) wants base64.
    Shapes that are wrong are left alone for json_format to refuse."""
    if not isinstance(document, dict):
        raise ValueError("the body is not a JSON object")
    for resource_spans in _objects(document.get("resourceSpans")):
        for scope_spans in _objects(resource_spans.get("scopeSpans")):
            for span in _objects(scope_spans.get("spans")):
                _fix_ids(span, ("traceId", "spanId", "parentSpanId"))
                for link in _objects(span.get("links")):
                    _fix_ids(link, ("traceId", "spanId"))


def _objects(value) -> list[dict]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _fix_ids(record: dict, names: Iterable[str]) -> None:
    for name in names:
        value = record.get(name)
        if isinstance(value, str) and len(value) % 2 == 0 and _HEX.match(value):
            record[name] = base64.b64encode(binascii.unhexlify(value)).decode()


# --- Ingesting ------------------------------------------------------------------------------


def spans_ingest(
    *,
    organization_id: int,
    project_id: int,
    team: str,
    project: str,
    user_id: int | None,
    api_key_prefix: str,
    store_bodies: bool,
    request: ExportTraceServiceRequest,
    now: datetime,
) -> IngestResult:
    """Write the request's spans as calls of this project, in one transaction.

    A span is rejected (counted, not written) when its ids are invalid or its start lies
    outside [now - retention, now + 1 day]; beyond MAX_SPANS the rest are rejected. A span
    already written (an exporter's retry) counts as accepted and is not written twice.
    """
    oldest = now - timedelta(days=retention_days_for(organization_id=organization_id))
    newest = now + FUTURE_SLACK
    common = {
        "organization_id": organization_id,
        "project_id": project_id,
        "team": team,
        "project": project,
        "user_id": user_id,
        "api_key_prefix": api_key_prefix,
    }
    reports: dict[tuple[datetime, str], CallReport] = {}
    reasons: dict[str, int] = {}
    seen = 0
    for resource_spans in request.resource_spans:
        service = _attributes(resource_spans.resource.attributes).get("service.name")
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                seen += 1
                if seen > MAX_SPANS:
                    reasons[f"more than {MAX_SPANS} spans in one request"] = seen - MAX_SPANS
                    continue
                report, reason = span_report(
                    span,
                    common=common,
                    service=service,
                    scope=scope_spans.scope.name,
                    store_bodies=store_bodies,
                    oldest=oldest,
                    newest=newest,
                )
                if report is None:
                    reasons[reason] = reasons.get(reason, 0) + 1
                else:
                    reports[(report.started_at, report.span_id)] = report
    fresh = _not_yet_written(project_id, list(reports.values()))
    calls_record(reports=fresh)
    rejected = sum(reasons.values())
    message = "; ".join(f"{count} span(s): {reason}" for reason, count in reasons.items())
    return IngestResult(accepted=seen - rejected, rejected=rejected, message=message)


def _not_yet_written(project_id: int, reports: list[CallReport]) -> list[CallReport]:
    if not reports:
        return []
    written = set(
        Call.objects.filter(
            project_id=project_id,
            started_at__gte=min(r.started_at for r in reports),
            started_at__lte=max(r.started_at for r in reports),
            span_id__in={r.span_id for r in reports},
        ).values_list("started_at", "span_id")
    )
    return [r for r in reports if (r.started_at, r.span_id) not in written]


def span_report(
    span: trace_pb2.Span,
    *,
    common: dict,
    service: object,
    scope: str,
    store_bodies: bool,
    oldest: datetime,
    newest: datetime,
) -> tuple[CallReport | None, str]:
    """The call for one span, or (None, why it was rejected)."""
    if len(span.trace_id) != 16 or not any(span.trace_id):
        return None, "invalid trace id"
    if len(span.span_id) != 8 or not any(span.span_id):
        return None, "invalid span id"
    if not span.start_time_unix_nano:
        return None, "no start time"
    started_at = _time(span.start_time_unix_nano)
    if not oldest <= started_at <= newest:
        return None, "start time before the retention period or more than a day ahead"
    ended_at = None
    duration_ms = 0
    if span.end_time_unix_nano >= span.start_time_unix_nano:
        ended_at = _time(span.end_time_unix_nano)
        duration_ms = (span.end_time_unix_nano - span.start_time_unix_nano) // 1_000_000

    attributes = _attributes(span.attributes)
    error = span.status.code == trace_pb2.Status.STATUS_CODE_ERROR
    report = CallReport(
        **common,
        started_at=started_at,
        ended_at=ended_at,
        duration_ms=duration_ms,
        span_id=span.span_id.hex(),
        trace_id=span.trace_id.hex(),
        parent_span_id=span.parent_span_id.hex() if len(span.parent_span_id) == 8 else "",
        source="otel",
        request_id="",
        op_name=span.name or "(unnamed span)",
        model=str(
            _first(attributes, "gen_ai.request.model", "gen_ai.response.model", "llm.model_name")
            or ""
        ),
        prompt_tokens=_count(
            attributes,
            "gen_ai.usage.input_tokens",
            "gen_ai.usage.prompt_tokens",
            "llm.token_count.prompt",
        ),
        completion_tokens=_count(
            attributes,
            "gen_ai.usage.output_tokens",
            "gen_ai.usage.completion_tokens",
            "llm.token_count.completion",
        ),
        finish_reason=_finish_reason(attributes),
        status="error" if error else "ok",
        http_status=_http_status(attributes),
        error_code=str(attributes.get("error.type") or "") if error else "",
        error_message=(span.status.message or _exception_message(span)) if error else "",
        attributes=_kept_attributes(attributes, service=service, scope=scope),
    )
    if store_bodies:
        report.inputs, report.output = _bodies(attributes, span.events)
    return report, ""


def _time(unix_nano: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=unix_nano // 1000)


def _value(any_value):
    kind = any_value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_value(item) for item in any_value.array_value.values]
    if kind == "kvlist_value":
        return _attributes(any_value.kvlist_value.values)
    if kind == "bytes_value":
        return base64.b64encode(any_value.bytes_value).decode()
    return getattr(any_value, kind)


def _attributes(key_values) -> dict:
    return {kv.key: _value(kv.value) for kv in key_values}


def _first(attributes: dict, *keys: str):
    for key in keys:
        value = attributes.get(key)
        if value not in (None, "", []):
            return value
    return None


def _count(attributes: dict, *keys: str) -> int:
    value = _first(attributes, *keys)
    try:
        return max(int(float(value)), 0) if value is not None else 0
    except (TypeError, ValueError):
        return 0


def _finish_reason(attributes: dict) -> str:
    value = _first(
        attributes, "gen_ai.response.finish_reasons", "gen_ai.completion.0.finish_reason"
    )
    if isinstance(value, list):
        value = value[0] if value else ""
    return str(value or "")


def _http_status(attributes: dict) -> int:
    """The span's own HTTP status when it has one; 0 for a span that is no HTTP call."""
    value = _first(attributes, "http.response.status_code", "http.status_code")
    try:
        status = int(value) if value is not None else 0
    except (TypeError, ValueError):
        return 0
    return status if 0 <= status <= 999 else 0


def _exception_message(span: trace_pb2.Span) -> str:
    for event in span.events:
        if event.name == "exception":
            return str(_attributes(event.attributes).get("exception.message") or "")
    return ""


def _secret(key: str, value) -> bool:
    return bool(_SECRET_KEY.search(key)) or (
        isinstance(value, str) and bool(_SECRET_VALUE.match(value))
    )


def _kept_attributes(attributes: dict, *, service, scope: str) -> dict:
    """The span's attributes minus bodies and anything that looks like a credential, with
    long values cut and the whole kept small (the list reads this column)."""
    kept: dict = {}
    if service:
        kept["service.name"] = str(service)[:ATTRIBUTE_VALUE_CHARS]
    if scope:
        kept["otel.scope.name"] = scope[:ATTRIBUTE_VALUE_CHARS]
    size = len(json.dumps(kept))
    for key, value in attributes.items():
        if _BODY_KEY.match(key) or _secret(key, value):
            continue
        if isinstance(value, (list, dict)):
            value = json.dumps(value, default=str)
            if len(value) > ATTRIBUTE_VALUE_CHARS:
                value = value[:ATTRIBUTE_VALUE_CHARS]
        elif isinstance(value, str) and len(value) > ATTRIBUTE_VALUE_CHARS:
            value = value[:ATTRIBUTE_VALUE_CHARS]
        size += len(key) + len(json.dumps(value, default=str)) + 6
        if len(kept) >= ATTRIBUTES_MAX_KEYS or size > ATTRIBUTES_MAX_CHARS:
            kept["attributes_truncated"] = True
            break
        kept[key[:200]] = value
    return kept


# --- Bodies ---------------------------------------------------------------------------------


def _bodies(attributes: dict, events) -> tuple[dict | None, dict | None]:
    """(inputs, output) from whichever convention the instrumentation used, or None."""
    inputs = output = None
    input_messages = (
        _json_messages(attributes.get("gen_ai.input.messages"))
        or _indexed_messages(attributes, "gen_ai.prompt")
        or _openinference_messages(attributes, "input")
        or _event_messages(events, output=False)
    )
    system = attributes.get("gen_ai.system_instructions")
    if input_messages:
        inputs = {"messages": input_messages}
        if system:
            inputs["system_instructions"] = _maybe_json(system)
    elif attributes.get("input.value") not in (None, ""):
        inputs = _value_body(attributes["input.value"], output=False)
    output_messages = (
        _json_messages(attributes.get("gen_ai.output.messages"))
        or _indexed_messages(attributes, "gen_ai.completion")
        or _openinference_messages(attributes, "output")
        or _event_messages(events, output=True)
    )
    if output_messages:
        output = {"content": _content_text(output_messages[0]), "messages": output_messages}
    elif attributes.get("output.value") not in (None, ""):
        output = _value_body(attributes["output.value"], output=True)
    return inputs, output


def _maybe_json(value):
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _json_messages(value) -> list:
    value = _maybe_json(value)
    return [m for m in value if isinstance(m, dict)] if isinstance(value, list) else []


def _indexed_messages(attributes: dict, prefix: str) -> list:
    """`gen_ai.prompt.0.role`, `gen_ai.prompt.0.content`, ... as a list of messages."""
    messages: dict[int, dict] = {}
    for key, value in attributes.items():
        match = _INDEXED.match(key)
        if match and match.group(1) == prefix:
            messages.setdefault(int(match.group(2)), {})[match.group(3)] = value
    return [messages[index] for index in sorted(messages)]


def _openinference_messages(attributes: dict, direction: str) -> list:
    """`llm.input_messages.0.message.role`, `...message.content`, ... as messages."""
    messages: dict[int, dict] = {}
    for key, value in attributes.items():
        match = _OPENINFERENCE_MESSAGE.match(key)
        if match and match.group(1) == direction:
            messages.setdefault(int(match.group(2)), {})[match.group(3)] = value
    return [messages[index] for index in sorted(messages)]


def _event_messages(events, *, output: bool) -> list:
    """Span events `gen_ai.<role>.message` (inputs) and `gen_ai.choice` (output), and the
    older `gen_ai.content.prompt|completion` events."""
    messages = []
    for event in events:
        name = event.name
        fields = _attributes(event.attributes)
        if output and name == "gen_ai.choice":
            message = fields.get("message")
            message = _maybe_json(message) if message is not None else {}
            if not isinstance(message, dict):
                message = {"content": message}
            message.setdefault("role", "assistant")
            if fields.get("finish_reason"):
                message["finish_reason"] = fields["finish_reason"]
            messages.append(message)
        elif not output and name.startswith("gen_ai.") and name.endswith(".message"):
            role = name[len("gen_ai.") : -len(".message")]
            messages.append({"role": fields.get("role") or role, "content": fields.get("content")})
        elif name == ("gen_ai.content.completion" if output else "gen_ai.content.prompt"):
            value = fields.get("gen_ai.completion" if output else "gen_ai.prompt")
            messages.extend(_json_messages(value) or ([{"content": value}] if value else []))
    return messages


def _value_body(value, *, output: bool) -> dict:
    """OpenInference's `input.value`/`output.value`: often the OpenAI request or response as
    JSON, else text."""
    parsed = _maybe_json(value)
    if not isinstance(parsed, dict):
        return {"content": str(value)} if output else {"text": str(value)}
    if output and isinstance(parsed.get("choices"), list) and parsed["choices"]:
        choice = parsed["choices"][0] if isinstance(parsed["choices"][0], dict) else {}
        message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
        return {
            "content": message.get("content"),
            "tool_calls": message.get("tool_calls"),
            "finish_reason": choice.get("finish_reason"),
        }
    if output:
        return {"content": json.dumps(parsed), "value": parsed}
    return parsed if "messages" in parsed else {"text": str(value), "value": parsed}


def _content_text(message: dict) -> str:
    """A message's text, whatever its shape (a string, OpenAI parts, or semconv `parts`)."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    parts = content if isinstance(content, list) else message.get("parts")
    if isinstance(parts, list):
        return " ".join(
            str(part.get("content") or part.get("text") or "")
            for part in parts
            if isinstance(part, dict)
        ).strip()
    return "" if content is None else str(content)
