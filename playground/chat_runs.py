"""One pane's run: a chat completion through the gateway, streamed to the pane as small events.

Every Playground and Compare call takes the gateway's one path (authorization, project,
concurrency slots, quota, usage rows with source "playground", or "compare" for a Compare session), exactly like an
API call.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from inference_app.gateway import GatewayError, resolve_session_caller, start_chat_completion
from inference_app.models import CatalogModel
from playground.chat_metrics import RunMetrics
from traces.reports import TraceContext

logger = logging.getLogger(__name__)

Emit = Callable[[dict], Awaitable[None]]
# Live metrics go out at most this often per pane; deltas go out as they come.
METRICS_INTERVAL_S = 0.25
SOURCE = "playground"
COMPARE_SOURCE = "compare"


async def _prices(model_id: str) -> tuple[int, int]:
    row = await (
        CatalogModel.objects.filter(model_id=model_id)
        .values_list("input_price_micros", "output_price_micros")
        .afirst()
    )
    return row or (0, 0)


def _error_event(message: str, code: str | None, status: int | None = None) -> dict:
    return {"type": "error", "message": message, "code": code, "status": status}


def error_event(exc: GatewayError) -> dict:
    """The pane's "error" event for a gateway error: the API's status, message and code."""
    return {**_error_event(exc.message, exc.code, exc.status), "param": exc.param}


_SERVER_ERROR = _error_event(
    "The server had an error while processing your request", "server_error", 500
)


async def pane_run(
    *,
    user,
    project_path: str | None,
    body: dict,
    emit: Emit,
    trace: TraceContext | None = None,
    source: str = SOURCE,
) -> None:
    """Run `body` for `user` and report through `emit`: start, delta…, metrics…, done | error.

    Cancelling the task is how a pane is stopped: the gateway cancels the engine request and
    settles usage for what was produced, and the pane still gets a final "done" (finish_reason
    "stopped") with the tokens it got. Whatever else goes wrong ends as an "error" event: a
    pane never stays spinning. `trace` puts the call in the page's session (its pane's
    history); `source` is "compare" for a Compare session's runs.
    """
    metrics = RunMetrics(input_price_micros=0, output_price_micros=0)
    try:
        caller = await resolve_session_caller(user, project_path, source=source)
        # The gateway validates the body before anything reads it: a model id that is no
        # text (a lone surrogate) is its 400, not a database error here.
        call = await start_chat_completion(caller, body, trace=trace)
    except GatewayError as exc:
        await emit(error_event(exc))
        return
    except asyncio.CancelledError:
        # Stopped before the engine answered (the gateway undoes its admission itself).
        await _emit_quietly(emit, _done_event(metrics, "stopped"))
        raise
    except Exception:
        logger.exception("playground run could not start")
        await emit(_SERVER_ERROR)
        return
    try:
        metrics.input_price_micros, metrics.output_price_micros = await _prices(call.model)
        await _stream(call, metrics, emit)
    except asyncio.CancelledError:
        await asyncio.shield(call.aclose())
        metrics.on_usage(call.usage)
        await _emit_quietly(emit, _done_event(metrics, "stopped"))
        raise
    except Exception:
        logger.exception("playground run failed")
        await emit(_SERVER_ERROR)
    finally:
        await asyncio.shield(call.aclose())


async def _stream(call, metrics: RunMetrics, emit: Emit) -> None:
    await emit({"type": "start", "request_id": call.request_id})
    finish_reason = None
    last_metrics_at = time.monotonic()
    async for chunk in call.chunks():
        if "error" in chunk:
            error = chunk["error"] or {}
            await emit(_error_event(error.get("message", "Error"), error.get("code")))
            return
        for choice in chunk.get("choices") or []:
            content = (choice.get("delta") or {}).get("content")
            if content:
                metrics.on_delta()
                await emit({"type": "delta", "content": content})
            finish_reason = choice.get("finish_reason") or finish_reason
        metrics.on_usage(chunk.get("usage"))
        if time.monotonic() - last_metrics_at >= METRICS_INTERVAL_S:
            last_metrics_at = time.monotonic()
            await emit({"type": "metrics", **metrics.snapshot()})
    await asyncio.shield(call.aclose())
    metrics.on_usage(call.usage)
    await emit(_done_event(metrics, finish_reason or call.finish_reason))


def _done_event(metrics: RunMetrics, finish_reason: str | None) -> dict:
    return {"type": "done", "finish_reason": finish_reason, **metrics.snapshot()}


async def _emit_quietly(emit: Emit, event: dict) -> None:
    # While stopping because the socket went away there is no one left to tell.
    try:
        await emit(event)
    except Exception:
        pass
