"""POST /otel/v1/traces through the real view and API authentication (Django's async client),
and through the ASGI entry point for what happens at the edge (body limit, routing)."""

import gzip
import json
import time

from asgiref.sync import sync_to_async
from channels.testing import HttpCommunicator
from django.test import AsyncClient
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from inference_app.models import Project
from tests.inference_app import gateway_world
from tests.traces.otlp_build import SECOND, export_request, otlp_json, span
from traces.models import Call, CallBody

URL = "/otel/v1/traces"
PROTOBUF = "application/x-protobuf"
DAY_NS = 86_400 * SECOND

# The gateway tests' world: an organization, team-a/main and team-a/second for the key's user,
# team-b/secret for someone else.
fake_engine = gateway_world.fake_engine
settlements_drained = gateway_world.settlements_drained
world = gateway_world.world


def chat_span(**kwargs):
    attributes = {
        "gen_ai.request.model": "my-model",
        "gen_ai.usage.input_tokens": 11,
        "gen_ai.usage.output_tokens": 3,
        "gen_ai.prompt.0.role": "user",
        "gen_ai.prompt.0.content": "Hello?",
        "gen_ai.completion.0.content": "Hi.",
    }
    return span("chat my-model", attributes=attributes, **kwargs)


async def post(body: bytes, *, content_type=PROTOBUF, headers=None):
    return await AsyncClient().post(URL, data=body, content_type=content_type, headers=headers)


async def calls(project_id: int) -> list[Call]:
    return await sync_to_async(lambda: list(Call.objects.filter(project_id=project_id)))()


async def test_protobuf_export_lands_in_the_callers_project(world):
    response = await post(export_request(chat_span()).SerializeToString(), headers=world.headers())
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == PROTOBUF
    answer = ExportTraceServiceResponse.FromString(response.content)
    assert not answer.HasField("partial_success")
    [call] = await calls(world.project.pk)
    assert (call.source, call.op_name, call.model) == ("otel", "chat my-model", "my-model")
    assert (call.prompt_tokens, call.completion_tokens) == (11, 3)
    assert call.organization_id == world.organization.pk and call.user_id == world.user.pk
    assert call.api_key_prefix == world.key_prefix
    assert (call.team, call.project) == ("team-a", "main")
    assert call.has_body


async def test_the_project_header_picks_another_of_the_users_projects(world):
    response = await post(
        export_request(chat_span()).SerializeToString(), headers=world.headers("team-a/second")
    )
    assert response.status_code == 200
    assert len(await calls(world.second_project.pk)) == 1
    assert await calls(world.project.pk) == []


async def test_json_export_is_answered_in_json(world):
    response = await post(
        otlp_json(export_request(chat_span())),
        content_type="application/json",
        headers=world.headers(),
    )
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"
    assert json.loads(response.content) == {}
    [call] = await calls(world.project.pk)
    assert call.trace_id == "0af7651916cd43dd8448eb211c80319c"


async def test_gzip_body_is_accepted(world):
    body = gzip.compress(export_request(chat_span()).SerializeToString())
    response = await post(body, headers={**world.headers(), "Content-Encoding": "gzip"})
    assert response.status_code == 200, response.content
    assert len(await calls(world.project.pk)) == 1


async def test_partial_success_names_the_rejected_spans(world):
    now = time.time_ns()
    request = export_request(
        chat_span(span_id=bytes.fromhex("0000000000000001")),
        chat_span(span_id=bytes.fromhex("0000000000000002"), start_ns=now - 400 * DAY_NS),
    )
    response = await post(
        otlp_json(request), content_type="application/json", headers=world.headers()
    )
    assert response.status_code == 200
    partial = json.loads(response.content)["partialSuccess"]
    assert partial["rejectedSpans"] == "1"
    assert "retention" in partial["errorMessage"]
    [call] = await calls(world.project.pk)
    assert call.span_id == "0000000000000001"


async def test_no_key_is_401_in_the_api_shape(world):
    response = await post(export_request(chat_span()).SerializeToString())
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    response = await post(b"", headers={"Authorization": "Bearer ys-not-a-real-key-123456"})
    assert response.status_code == 401
    assert await sync_to_async(Call.objects.count)() == 0


async def test_a_project_the_user_is_not_in_is_refused(world):
    # team-b/secret is in the same organization, but the key's user is not in team-b.
    for project in ("team-b/secret", "no-such/project"):
        response = await post(
            export_request(chat_span()).SerializeToString(), headers=world.headers(project)
        )
        assert response.status_code == 401, project
        assert response.json()["error"]["type"] == "invalid_request_error"
    assert await sync_to_async(Call.objects.count)() == 0


async def test_other_content_types_are_415(world):
    response = await post(b"hello", content_type="text/plain", headers=world.headers())
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"
    response = await post(
        export_request(chat_span()).SerializeToString(),
        headers={**world.headers(), "Content-Encoding": "br"},
    )
    assert response.status_code == 415


async def test_an_undecodable_body_is_400(world):
    response = await post(b"\xff\xff\xff\xff", headers=world.headers())
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    response = await post(b"not json", content_type="application/json", headers=world.headers())
    assert response.status_code == 400


async def test_bodies_switched_off_keep_only_metadata(world):
    await sync_to_async(Project.objects.filter(pk=world.project.pk).update)(store_call_bodies=False)
    response = await post(export_request(chat_span()).SerializeToString(), headers=world.headers())
    assert response.status_code == 200
    [call] = await calls(world.project.pk)
    assert not call.has_body and call.prompt_tokens == 11
    assert await sync_to_async(CallBody.objects.count)() == 0


async def test_get_is_405(world):
    response = await AsyncClient().get(URL, headers=world.headers())
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


async def _asgi_post(headers: list[tuple[bytes, bytes]], body: bytes):
    from inference_app.asgi import application

    communicator = HttpCommunicator(application, "POST", URL, body=body, headers=headers)
    return await communicator.get_response(timeout=10)


async def test_the_asgi_edge_routes_otel_like_the_api(world):
    body = export_request(chat_span()).SerializeToString()
    headers = [
        (b"host", b"testserver"),
        (b"content-type", PROTOBUF.encode()),
        (b"authorization", f"Bearer {world.raw_key}".encode()),
        (b"openai-project", b"team-a/main"),
    ]
    response = await _asgi_post(headers, body)
    assert response["status"] == 200, response["body"]
    response_headers = {k.decode().lower(): v.decode() for k, v in response["headers"]}
    assert "x-frame-options" not in response_headers  # the API's handler, not the site's
    assert len(await calls(world.project.pk)) == 1


async def test_the_body_limit_applies_at_the_edge(world, settings):
    settings.MAX_REQUEST_BYTES = 1000
    headers = [
        (b"host", b"testserver"),
        (b"content-type", PROTOBUF.encode()),
        (b"authorization", f"Bearer {world.raw_key}".encode()),
        (b"content-length", b"5000"),
    ]
    response = await _asgi_post(headers, b"\0" * 5000)
    assert response["status"] == 413
    # Refused by the edge before the body was read (the view would not close the connection).
    assert (b"connection", b"close") in response["headers"]
    assert json.loads(response["body"])["error"]["code"] == "request_too_large"


async def test_a_gzip_bomb_is_413(world, settings):
    settings.MAX_REQUEST_BYTES = 10_000
    body = gzip.compress(b"\0" * 1_000_000)
    assert len(body) < 10_000
    response = await post(body, headers={**world.headers(), "Content-Encoding": "gzip"})
    assert response.status_code == 413
