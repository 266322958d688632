"""Building OTLP export requests with opentelemetry-proto, as an exporter would."""

from __future__ import annotations

import base64
import json
import time

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

TRACE_ID = bytes.fromhex("0AF7651916CD43DD8448EB211C80319C")
PARENT_ID = bytes.fromhex("B7AD6B7169203331")
SECOND = 1_000_000_000


def any_value(value) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, (list, tuple)):
        return AnyValue(array_value=ArrayValue(values=[any_value(item) for item in value]))
    return AnyValue(string_value=str(value))


def key_values(attributes: dict) -> list[KeyValue]:
    return [KeyValue(key=key, value=any_value(value)) for key, value in attributes.items()]


def span(
    name: str = "chat",
    *,
    span_id: bytes = bytes.fromhex("00F067AA0BA902B7"),
    trace_id: bytes = TRACE_ID,
    parent: bytes = PARENT_ID,
    start_ns: int | None = None,
    duration_ns: int = 250_000_000,
    attributes: dict | None = None,
    error: str | None = None,
    events: list[tuple[str, dict]] = (),
) -> Span:
    start_ns = start_ns if start_ns is not None else time.time_ns() - 5 * SECOND
    result = Span(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent,
        name=name,
        kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=start_ns,
        end_time_unix_nano=start_ns + duration_ns,
        attributes=key_values(attributes or {}),
        events=[
            Span.Event(name=event, time_unix_nano=start_ns, attributes=key_values(fields))
            for event, fields in events
        ],
    )
    if error is not None:
        result.status.CopyFrom(Status(code=Status.STATUS_CODE_ERROR, message=error))
    return result


def export_request(*spans: Span, service: str = "my-app") -> ExportTraceServiceRequest:
    resource_spans = ResourceSpans(scope_spans=[ScopeSpans(spans=list(spans))])
    resource_spans.resource.attributes.extend(key_values({"service.name": service}))
    resource_spans.scope_spans[0].scope.name = "tests.otlp"
    return ExportTraceServiceRequest(resource_spans=[resource_spans])


def otlp_json(request: ExportTraceServiceRequest) -> bytes:
    """OTLP/JSON as the specification writes it: ids in hex, not proto3 JSON's base64."""
    document = json_format.MessageToDict(request)
    for resource_spans in document.get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            for item in scope_spans.get("spans", []):
                for name in ("traceId", "spanId", "parentSpanId"):
                    if name in item:
                        item[name] = base64.b64decode(item[name]).hex()
    return json.dumps(document).encode()
