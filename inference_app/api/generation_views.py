"""GET /v1/generation?id=<request id>: one gateway call's figures, for scripts (OpenRouter's
shape). Rows are written a moment after the response, so a 404 may just mean "not yet"."""

from __future__ import annotations

from decimal import Decimal

from inference_app.api.exchange import ApiRequest, JsonResponse, authenticate
from inference_app.gateway import errors
from inference_app.gateway.db_threads import run_db
from inference_app.gateway.errors import GatewayError
from traces.models import Call
from traces.selectors import call_by_request_id


def generation_not_found(request_id: str) -> GatewayError:
    return GatewayError(
        status=404,
        message=(
            f"Generation {request_id} not found in this project. A call is recorded a moment "
            "after its response: if it just finished, try again shortly."
        ),
        type="invalid_request_error",
        code="generation_not_found",
        param="id",
    )


async def generation(request: ApiRequest) -> JsonResponse:
    caller = await authenticate(request)
    request_id = (request.query("id") or "").strip()
    if not request_id:
        raise errors.invalid_request("Missing required query parameter: id.", param="id")
    call = await run_db(
        call_by_request_id, project_id=caller.project_id, request_id=request_id[:64]
    )
    if call is None:
        raise generation_not_found(request_id[:64])
    return JsonResponse({"data": generation_data(call)})


def generation_data(call: Call) -> dict:
    generation_time = None
    if call.ttft_ms is not None:
        generation_time = max(call.duration_ms - call.ttft_ms, 0)
    cost = None
    if call.cost_micros is not None:
        cost = f"{Decimal(call.cost_micros).scaleb(-6):f}"
    return {
        "id": call.request_id,
        "trace_id": call.trace_id,
        "span_id": call.span_id,
        "model": call.model,
        "deployment": call.deployment,
        "created_at": call.started_at.isoformat().replace("+00:00", "Z"),
        "streamed": call.stream,
        "cancelled": call.status == Call.Status.CANCELLED,
        "status": call.status,
        "finish_reason": call.finish_reason or None,
        "latency": call.duration_ms,
        "generation_time": generation_time,
        "time_to_first_token": call.ttft_ms,
        "tokens_prompt": call.prompt_tokens,
        "tokens_completion": call.completion_tokens,
        "tokens_counted_by_gateway": call.tokens_counted_by_gateway,
        "total_cost_micros": call.cost_micros,
        "total_cost": cost,
        "source": call.source,
    }
