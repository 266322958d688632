"""traces.otlp: OTLP requests (built with opentelemetry-proto) decoded and written as calls."""

import gzip
import json
import time
from datetime import timedelta

import pytest
from django.utils import timezone
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tests.traces.otlp_build import PARENT_ID, SECOND, TRACE_ID, export_request, otlp_json, span
from traces import otlp
from traces.models import Call, CallBody, RetentionPolicy

pytestmark = pytest.mark.django_db

PROJECT_ID = 41
DAY_NS = 86_400 * SECOND


def ingest(*spans, store_bodies: bool = True, organization_id: int = 7, service="my-app"):
    request = export_request(*spans, service=service)
    # Through the wire format, as the endpoint gets it.
    decoded = otlp.request_decode(request.SerializeToString(), "application/x-protobuf")
    return otlp.spans_ingest(
        organization_id=organization_id,
        project_id=PROJECT_ID,
        team="team-a",
        project="main",
        user_id=3,
        api_key_prefix="ys-abc",
        store_bodies=store_bodies,
        request=decoded,
        now=timezone.now(),
    )


def only_call() -> Call:
    [call] = Call.objects.filter(project_id=PROJECT_ID)
    return call


def body_of(call: Call) -> CallBody | None:
    return CallBody.objects.filter(project_id=PROJECT_ID, span_id=call.span_id).first()


def test_protobuf_span_with_current_gen_ai_keys_becomes_a_call():
    start = time.time_ns() - 10 * SECOND
    result = ingest(
        span(
            "chat my-model",
            start_ns=start,
            duration_ns=1_500_000_000,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.system": "openai",
                "gen_ai.request.model": "my-model",
                "gen_ai.response.model": "my-model-2025",
                "gen_ai.request.max_tokens": 100,
                "gen_ai.usage.input_tokens": 12,
                "gen_ai.usage.output_tokens": 34,
                "gen_ai.response.finish_reasons": ["length"],
            },
        )
    )
    assert result == otlp.IngestResult(accepted=1, rejected=0)
    call = only_call()
    # Ids in lowercase hex, whatever case they were written in.
    assert call.trace_id == "0af7651916cd43dd8448eb211c80319c"
    assert call.span_id == "00f067aa0ba902b7"
    assert call.parent_span_id == "b7ad6b7169203331"
    assert (call.op_name, call.source, call.request_id) == ("chat my-model", "otel", "")
    assert call.model == "my-model"  # what was asked (the request model comes first)
    assert (call.prompt_tokens, call.completion_tokens) == (12, 34)
    assert call.finish_reason == "length"
    assert call.status == "ok" and call.cost_micros is None
    assert call.duration_ms == 1500
    assert abs(call.started_at.timestamp() * 1e9 - start) < 2_000  # microsecond precision
    assert call.ended_at - call.started_at == timedelta(milliseconds=1500)
    assert (call.organization_id, call.user_id, call.api_key_prefix) == (7, 3, "ys-abc")
    assert (call.team, call.project) == ("team-a", "main")
    assert call.attributes["service.name"] == "my-app"
    assert call.attributes["gen_ai.system"] == "openai"
    assert call.attributes["gen_ai.request.max_tokens"] == 100
    assert call.attributes["gen_ai.usage.input_tokens"] == 12
    assert not call.has_body  # no conversation in these attributes


def test_json_with_hex_ids_decodes_like_protobuf():
    request = export_request(
        span(attributes={"gen_ai.request.model": "m", "gen_ai.usage.input_tokens": 5})
    )
    body = otlp_json(request)
    assert "0af7651916cd43dd8448eb211c80319c" in body.decode()  # hex on the wire
    decoded = otlp.request_decode(body, "application/json; charset=utf-8")
    assert decoded == request
    [sent] = decoded.resource_spans[0].scope_spans[0].spans
    assert sent.trace_id == TRACE_ID and sent.parent_span_id == PARENT_ID


def test_handwritten_otlp_json_with_string_numbers_and_unknown_fields():
    now_ns = time.time_ns()
    document = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]
                },
                "scopeSpans": [
                    {
                        "scope": {"name": "manual"},
                        "spans": [
                            {
                                "traceId": "5B8EFFF798038103D269B633813FC60C",
                                "spanId": "EEE19B7EC3C1B174",
                                "name": "run_chat",
                                "kind": 1,
                                "startTimeUnixNano": str(now_ns - SECOND),
                                "endTimeUnixNano": str(now_ns),
                                "attributes": [
                                    {"key": "llm.token_count.prompt", "value": {"intValue": "9"}}
                                ],
                                "someFutureField": True,
                            }
                        ],
                    }
                ],
            }
        ]
    }
    request = otlp.request_decode(json.dumps(document).encode(), "application/json")
    result = otlp.spans_ingest(
        organization_id=1,
        project_id=PROJECT_ID,
        team="t",
        project="p",
        user_id=None,
        api_key_prefix="",
        store_bodies=True,
        request=request,
        now=timezone.now(),
    )
    assert result.accepted == 1
    call = only_call()
    assert (call.trace_id, call.span_id) == ("5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174")
    assert call.parent_span_id == "" and call.prompt_tokens == 9
    assert call.attributes["service.name"] == "svc"


def test_legacy_gen_ai_keys_give_tokens_and_bodies():
    ingest(
        span(
            attributes={
                "gen_ai.request.model": "legacy-model",
                "gen_ai.usage.prompt_tokens": 21,
                "gen_ai.usage.completion_tokens": 8,
                "gen_ai.prompt.0.role": "system",
                "gen_ai.prompt.0.content": "Be brief.",
                "gen_ai.prompt.1.role": "user",
                "gen_ai.prompt.1.content": "Name a Colour",
                "gen_ai.completion.0.role": "assistant",
                "gen_ai.completion.0.content": "Blue.",
                "gen_ai.completion.0.finish_reason": "stop",
            }
        )
    )
    call = only_call()
    assert (call.model, call.prompt_tokens, call.completion_tokens) == ("legacy-model", 21, 8)
    assert call.finish_reason == "stop"
    assert call.has_body
    body = body_of(call)
    assert body.inputs["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Name a Colour"},
    ]
    assert body.output["content"] == "Blue."
    assert "name a colour" in body.search_text and "blue." in body.search_text
    # Bodies never also sit in the attributes.
    assert not any(
        key.startswith(("gen_ai.prompt", "gen_ai.completion")) for key in call.attributes
    )


def test_openinference_keys_give_model_tokens_and_bodies():
    request_json = {"model": "oi-model", "messages": [{"role": "user", "content": "Hi there"}]}
    response_json = {
        "choices": [
            {"message": {"role": "assistant", "content": "Hello!"}, "finish_reason": "stop"}
        ]
    }
    ingest(
        span(
            "ChatCompletion",
            attributes={
                "openinference.span.kind": "LLM",
                "llm.model_name": "oi-model",
                "llm.token_count.prompt": 4,
                "llm.token_count.completion": 2,
                "llm.token_count.total": 6,
                "input.value": json.dumps(request_json),
                "input.mime_type": "application/json",
                "output.value": json.dumps(response_json),
                "llm.input_messages.0.message.role": "user",
                "llm.input_messages.0.message.content": "Hi there",
            },
        )
    )
    call = only_call()
    assert (call.model, call.prompt_tokens, call.completion_tokens) == ("oi-model", 4, 2)
    assert call.attributes["llm.token_count.total"] == 6
    assert "input.value" not in call.attributes and "output.value" not in call.attributes
    assert not any(key.startswith("llm.input_messages") for key in call.attributes)
    body = body_of(call)
    assert body.inputs["messages"] == [{"role": "user", "content": "Hi there"}]
    assert body.output["content"] == "Hello!" and body.output["finish_reason"] == "stop"


def test_openinference_text_values_are_kept_as_text():
    ingest(span(attributes={"input.value": "what is 2+2?", "output.value": "4"}))
    body = body_of(only_call())
    assert body.inputs == {"text": "what is 2+2?"}
    assert body.output == {"content": "4"}
    assert "what is 2+2?" in body.search_text


def test_current_semconv_messages_and_events_give_bodies():
    messages = [{"role": "user", "parts": [{"type": "text", "content": "Weather?"}]}]
    answer = [{"role": "assistant", "parts": [{"type": "text", "content": "Sunny."}]}]
    ingest(
        span(
            span_id=bytes.fromhex("1111111111111111"),
            attributes={
                "gen_ai.input.messages": json.dumps(messages),
                "gen_ai.output.messages": json.dumps(answer),
            },
        ),
        span(
            span_id=bytes.fromhex("2222222222222222"),
            events=[
                ("gen_ai.system.message", {"content": "Be kind."}),
                ("gen_ai.user.message", {"content": "Hello?"}),
                ("gen_ai.choice", {"finish_reason": "stop", "message": '{"content": "Hi!"}'}),
            ],
        ),
    )
    first = Call.objects.get(project_id=PROJECT_ID, span_id="1111111111111111")
    assert body_of(first).inputs["messages"] == messages
    assert body_of(first).output["content"] == "Sunny."
    second = Call.objects.get(project_id=PROJECT_ID, span_id="2222222222222222")
    assert body_of(second).inputs["messages"] == [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "Hello?"},
    ]
    assert body_of(second).output["content"] == "Hi!"
    assert "gen_ai.input.messages" not in first.attributes


def test_secrets_are_dropped_and_token_counts_kept():
    ingest(
        span(
            attributes={
                "http.request.header.authorization": "Bearer ys-secret",
                "openai.api_key": "sk-123",
                "x-api-key": "k",
                "session.cookie": "sessionid=1",
                "auth_token": "t",
                "client_secret": "s",
                "db.password": "p",
                "custom.header": "Bearer abc",  # a credential whatever its key
                "gen_ai.usage.input_tokens": 3,
                "gen_ai.usage.output_tokens": 4,
                "llm.token_count.prompt": 3,
                "gen_ai.request.max_tokens": 64,
                "app.user_tier": "gold",
            }
        )
    )
    attributes = only_call().attributes
    stored = json.dumps(attributes)
    for secret in ("ys-secret", "sk-123", "sessionid", "Bearer"):
        assert secret not in stored
    for key in ("x-api-key", "auth_token", "client_secret", "db.password", "custom.header"):
        assert key not in attributes
    assert attributes["gen_ai.usage.input_tokens"] == 3
    assert attributes["gen_ai.usage.output_tokens"] == 4
    assert attributes["llm.token_count.prompt"] == 3
    assert attributes["gen_ai.request.max_tokens"] == 64
    assert attributes["app.user_tier"] == "gold"


def test_attributes_are_kept_small():
    many = {f"app.key{index}": "x" * 5000 for index in range(200)}
    ingest(span(attributes=many))
    attributes = only_call().attributes
    assert attributes["attributes_truncated"] is True
    assert len(json.dumps(attributes)) < 20_000
    assert all(len(value) <= 1000 for value in attributes.values() if isinstance(value, str))


def test_spans_outside_the_retention_window_are_rejected():
    now = time.time_ns()
    result = ingest(
        span(span_id=bytes.fromhex("0000000000000001"), start_ns=now - 31 * DAY_NS),
        span(span_id=bytes.fromhex("0000000000000002"), start_ns=now + 2 * DAY_NS),
        span(span_id=bytes.fromhex("0000000000000003"), start_ns=now - 29 * DAY_NS),
        span(span_id=bytes.fromhex("0000000000000004"), start_ns=now + DAY_NS // 2),
    )
    assert (result.accepted, result.rejected) == (2, 2)
    assert "retention" in result.message
    kept = set(Call.objects.values_list("span_id", flat=True))
    assert kept == {"0000000000000003", "0000000000000004"}


def test_an_organizations_longer_retention_accepts_older_spans():
    RetentionPolicy.objects.create(organization_id=7, days=60)
    result = ingest(span(start_ns=time.time_ns() - 45 * DAY_NS))
    assert (result.accepted, result.rejected) == (1, 0)


def test_bodies_off_stores_no_body_and_no_body_attribute():
    ingest(
        span(
            attributes={
                "input.value": "my private question",
                "output.value": "a private answer",
                "gen_ai.prompt.0.content": "private",
                "gen_ai.usage.input_tokens": 5,
            }
        ),
        store_bodies=False,
    )
    call = only_call()
    assert not call.has_body and CallBody.objects.count() == 0
    assert "private" not in json.dumps(call.attributes)
    assert call.prompt_tokens == 5


def test_error_status_gives_an_error_call():
    ingest(
        span(
            error="upstream timed out",
            attributes={"error.type": "TimeoutError", "http.response.status_code": 504},
        )
    )
    call = only_call()
    assert call.status == "error" and call.error_message == "upstream timed out"
    assert call.error_code == "TimeoutError" and call.http_status == 504


def test_invalid_ids_are_rejected():
    result = ingest(
        span(span_id=bytes(8)),
        span(trace_id=bytes(16)),
        span(span_id=b"\x01\x02"),
        span(span_id=bytes.fromhex("0000000000000009")),
    )
    assert (result.accepted, result.rejected) == (1, 3)
    assert "invalid span id" in result.message and "invalid trace id" in result.message


def test_a_retried_export_writes_nothing_twice():
    spans = [span(span_id=bytes.fromhex(f"{index:016x}")) for index in range(1, 4)]
    assert ingest(*spans).accepted == 3
    assert ingest(*spans).accepted == 3  # the exporter's retry is answered as a success
    assert Call.objects.count() == 3


def test_spans_beyond_the_limit_are_rejected(monkeypatch):
    monkeypatch.setattr(otlp, "MAX_SPANS", 3)
    result = ingest(*[span(span_id=bytes.fromhex(f"{index:016x}")) for index in range(1, 6)])
    assert (result.accepted, result.rejected) == (3, 2)
    assert "more than 3 spans" in result.message
    assert Call.objects.count() == 3


def test_the_response_is_in_the_requests_encoding():
    partial = otlp.IngestResult(accepted=1, rejected=2, message="2 span(s): too old")
    as_json = json.loads(otlp.response_encode(partial, "application/json"))
    assert as_json == {
        "partialSuccess": {"rejectedSpans": "2", "errorMessage": "2 span(s): too old"}
    }
    as_proto = ExportTraceServiceResponse.FromString(
        otlp.response_encode(partial, "application/x-protobuf")
    )
    assert as_proto.partial_success.rejected_spans == 2
    full = otlp.IngestResult(accepted=3, rejected=0)
    assert json.loads(otlp.response_encode(full, "application/json")) == {}
    assert not ExportTraceServiceResponse.FromString(
        otlp.response_encode(full, "application/x-protobuf")
    ).HasField("partial_success")


def test_undecodable_bodies_and_other_types_are_refused():
    with pytest.raises(otlp.UndecodableRequest):
        otlp.request_decode(b"\xff\xff\xff garbage", "application/x-protobuf")
    with pytest.raises(otlp.UndecodableRequest):
        otlp.request_decode(b"[1, 2]", "application/json")
    with pytest.raises(otlp.UndecodableRequest):
        otlp.request_decode(b'{"resourceSpans": 5}', "application/json")
    with pytest.raises(otlp.UnsupportedContentType):
        otlp.request_decode(b"{}", "text/plain")


def test_gunzip_refuses_a_bomb():
    assert otlp.gunzip(gzip.compress(b"abc"), limit=10) == b"abc"
    with pytest.raises(otlp.TooLarge):
        otlp.gunzip(gzip.compress(b"\0" * 100_000), limit=1000)
    with pytest.raises(otlp.UndecodableRequest):
        otlp.gunzip(b"not gzip", limit=1000)
