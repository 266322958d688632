"""An application instrumented with the OpenTelemetry SDK, against a live daphne: its spans go
to /otel/v1/traces through the standard OTLP/HTTP exporter, its `openai` call carries the W3C
traceparent, and the project's calls form one tree with the gateway's call as the child of the
application's span."""

import json
import time

import httpx
import pytest
from opentelemetry import propagate
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from tests.support.clients import api_headers, openai_client
from tests.support.world import FAST_MODEL, MAIN_PROJECT, RIVAL_PROJECT

HELLO = [{"role": "user", "content": "Say hello."}]


@pytest.fixture
def stack(sqlite_stack):
    return sqlite_stack


def tracer_provider(stack, key: str, project: str) -> TracerProvider:
    """What an application does (not the global provider: tests share the process)."""
    provider = TracerProvider(resource=Resource.create({"service.name": "otel-live-test"}))
    exporter = OTLPSpanExporter(
        endpoint=f"{stack.url}/otel/v1/traces",
        headers={"Authorization": f"Bearer {key}", "OpenAI-Project": project},
        timeout=10,
        compression=Compression.Gzip,  # OTEL_EXPORTER_OTLP_COMPRESSION=gzip
    )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def generation(stack, key: str, request_id: str, *, timeout: float = 10.0) -> dict:
    """/v1/generation for `request_id`, polled while its row is not written yet (404)."""
    deadline = time.monotonic() + timeout
    while True:
        response = httpx.get(
            f"{stack.url}/v1/generation",
            params={"id": request_id},
            headers=api_headers(key, MAIN_PROJECT),
        )
        if response.status_code != 404 or time.monotonic() > deadline:
            assert response.status_code == 200, response.text
            return response.json()["data"]
        time.sleep(0.1)


def calls_of_trace(stack, trace_id: str, *, expect: int, timeout: float = 10.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        rows = stack.query(
            "SELECT span_id, parent_span_id, trace_id, source, op_name, request_id, model,"
            " project, team, status, cost_micros, attributes FROM traces_call"
            " WHERE trace_id = %s ORDER BY started_at",
            (trace_id,),
        )
        if len(rows) >= expect or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def test_an_applications_span_and_the_gateways_call_form_one_tree(stack):
    key = stack.api_keys["alice"]
    provider = tracer_provider(stack, key, MAIN_PROJECT)
    tracer = provider.get_tracer("tests.live.otel")
    client = openai_client(stack.url, key, MAIN_PROJECT)
    with tracer.start_as_current_span("run_chat") as span:
        span.set_attribute("app.question", "hello")
        headers: dict[str, str] = {}
        propagate.inject(headers)  # W3C traceparent of run_chat
        completion = client.chat.completions.with_raw_response.create(
            model=FAST_MODEL, messages=HELLO, extra_headers=headers
        )
    assert provider.force_flush(10_000)
    provider.shutdown()
    trace_id = format(span.get_span_context().trace_id, "032x")
    run_chat_id = format(span.get_span_context().span_id, "016x")
    assert headers["traceparent"].startswith(f"00-{trace_id}-{run_chat_id}-")
    request_id = completion.headers["x-request-id"]

    data = generation(stack, key, request_id)
    assert data["id"] == request_id and data["source"] == "api"
    assert data["trace_id"] == trace_id
    # The response names the gateway's span in the same trace.
    assert completion.headers["traceparent"] == f"00-{trace_id}-{data['span_id']}-01"

    rows = calls_of_trace(stack, trace_id, expect=2)
    assert len(rows) == 2, rows
    by_source = {row["source"]: row for row in rows}
    app_span, gateway_call = by_source["otel"], by_source["api"]
    assert app_span["op_name"] == "run_chat" and app_span["span_id"] == run_chat_id
    assert app_span["parent_span_id"] == "" and app_span["request_id"] == ""
    assert app_span["cost_micros"] is None
    attributes = app_span["attributes"]
    attributes = json.loads(attributes) if isinstance(attributes, str) else attributes
    assert attributes["service.name"] == "otel-live-test"
    assert attributes["app.question"] == "hello"
    assert gateway_call["parent_span_id"] == run_chat_id
    assert gateway_call["request_id"] == request_id and gateway_call["model"] == FAST_MODEL
    assert gateway_call["span_id"] == data["span_id"]
    assert gateway_call["cost_micros"] == data["total_cost_micros"]
    assert (app_span["team"], app_span["project"]) == ("acme", "main")


def test_the_exporter_cannot_write_into_a_project_the_user_is_not_in(stack):
    # alice is not in the rival team: the export is refused (401) and nothing is written.
    key = stack.api_keys["alice"]
    exporter = OTLPSpanExporter(
        endpoint=f"{stack.url}/otel/v1/traces",
        headers={"Authorization": f"Bearer {key}", "OpenAI-Project": RIVAL_PROJECT},
        timeout=10,
    )
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    with provider.get_tracer("tests.live.otel").start_as_current_span("sneaky") as span:
        pass
    provider.force_flush(10_000)
    provider.shutdown()
    trace_id = format(span.get_span_context().trace_id, "032x")
    assert calls_of_trace(stack, trace_id, expect=1, timeout=1.0) == []
    response = httpx.post(
        f"{stack.url}/otel/v1/traces",
        content=b"",
        headers={
            "Authorization": f"Bearer {key}",
            "OpenAI-Project": RIVAL_PROJECT,
            "Content-Type": "application/x-protobuf",
        },
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
