"""POST /otel/v1/traces: OpenTelemetry spans (OTLP/HTTP, protobuf or JSON) into the caller's
project, authenticated like the API (Bearer key + OpenAI-Project, which exporters send through
OTEL_EXPORTER_OTLP_HEADERS) and answered in the API's error shape when refused."""

from __future__ import annotations

from django.conf import settings
from django.utils import timezone

from inference_app.api.exchange import ApiRequest, BytesResponse, authenticate
from inference_app.gateway import errors
from inference_app.gateway.callers import Caller
from inference_app.gateway.db_threads import run_db
from inference_app.gateway.errors import GatewayError
from inference_app.models import Project
from traces import otlp


def unsupported_media_type(message: str) -> GatewayError:
    return GatewayError(
        status=415,
        message=message,
        type="invalid_request_error",
        code="unsupported_media_type",
    )


async def traces_export(request: ApiRequest) -> BytesResponse:
    # Who first: a project the key's user is not in is refused before the body is parsed.
    caller = await authenticate(request)
    content_type = request.header("content-type")
    if otlp.media_type(content_type) not in (otlp.PROTOBUF, otlp.JSON):
        raise unsupported_media_type(
            f"Content-Type must be {otlp.PROTOBUF} or {otlp.JSON} (OTLP/HTTP)."
        )
    body = await request.read_body()
    encoding = (request.header("content-encoding") or "identity").strip().lower()
    if encoding == "gzip":
        try:
            body = otlp.gunzip(body, limit=settings.MAX_REQUEST_BYTES)
        except otlp.TooLarge:
            raise errors.request_too_large(settings.MAX_REQUEST_BYTES) from None
        except otlp.UndecodableRequest as exc:
            raise errors.invalid_request(str(exc)) from None
    elif encoding != "identity":
        raise unsupported_media_type("Content-Encoding must be gzip or identity.")
    try:
        export = otlp.request_decode(body, content_type)
    except otlp.UndecodableRequest as exc:
        raise errors.invalid_request(str(exc)) from None
    result = await run_db(_ingest, caller, export)
    return BytesResponse(
        otlp.response_encode(result, content_type), content_type=otlp.media_type(content_type)
    )


def _ingest(caller: Caller, export) -> otlp.IngestResult:
    store_bodies = (
        Project.objects.filter(pk=caller.project_id)
        .values_list("store_call_bodies", flat=True)
        .first()
    )
    return otlp.spans_ingest(
        organization_id=caller.organization_id,
        project_id=caller.project_id,
        team=caller.team,
        project=caller.project,
        user_id=caller.user_id,
        api_key_prefix=caller.api_key_prefix,
        store_bodies=bool(store_bodies),
        request=export,
        now=timezone.now(),
    )
