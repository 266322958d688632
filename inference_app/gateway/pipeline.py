"""The one path every chat completion takes, from the API view and the playground alike.

start_chat_completion: validate → take concurrency slots → hold the worst-case cost → open
the engine request on a healthy deployment. Any rejection before the engine answers leaves
nothing taken and nothing written. After that, ChatCall owns the request: its slots are
released and its usage settled exactly once, whichever way it ends (done, engine error,
client disconnect, aclose), with settlement shielded from cancellation.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
from django.conf import settings

from billing.errors import QuotaExceeded
from billing.quota import HoldRequest, release_reservation
from billing.usage import UsageReport, usage_cost_micros
from inference_app.gateway import (
    call_records,
    credit_holds,
    engine_client,
    errors,
    routing,
    settlement,
    tokens,
)
from inference_app.gateway.callers import Caller
from inference_app.gateway.concurrency import Lease, acquire_slots
from inference_app.gateway.requests import ChatRequest, parse_chat_request
from traces.reports import CallReport, TraceContext, new_span_id, new_trace_id

log = logging.getLogger(__name__)

# Worst case reserved (and the cap sent to the engine) when the caller sets no max_tokens.
DEFAULT_MAX_TOKENS = 4096
# The most a usage row's token counts can hold (a 32-bit integer column).
MAX_TOKEN_COUNT = 2**31 - 1


def new_request_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


async def start_chat_completion(
    caller: Caller,
    body: dict,
    *,
    request_id: str | None = None,
    trace: TraceContext | None = None,
) -> ChatCall:
    """Validate, admit and open one chat completion; see the module docstring.

    `trace` places the call in a trace (a client's traceparent, a Playground session); without
    it the call starts a trace of its own.
    """
    request = parse_chat_request(body)
    route = await routing.get_route(request.model)
    if request.has_images and not route.supports_vision:
        raise errors.invalid_request(
            f"The model `{route.model_id}` does not support image inputs.", param="messages"
        )
    prompt_estimate = tokens.estimate_prompt_tokens(body, image_tokens=route.image_tokens_max)
    requested = request.requested_max_tokens
    room = route.context_window - prompt_estimate
    if requested is not None and requested > room:
        raise errors.invalid_request(
            f"This model's maximum context length is {route.context_window} tokens. However, "
            f"you requested about {prompt_estimate + requested} tokens ({prompt_estimate} in "
            f"the messages, {requested} in the completion). Please reduce the length of the "
            "messages or completion.",
            param="max_tokens",
        )
    if room < 1:
        raise errors.invalid_request(
            f"This model's maximum context length is {route.context_window} tokens, but the "
            f"messages take about {prompt_estimate}. Please reduce the length of the messages.",
            param="messages",
        )
    max_tokens = requested or min(room, DEFAULT_MAX_TOKENS)

    call = ChatCall(
        caller=caller,
        request=request,
        route=route,
        body=body,
        request_id=request_id or new_request_id(),
        prompt_estimate=prompt_estimate,
        max_tokens=max_tokens,
        trace=trace,
    )
    await call._admit()
    await call._open()
    return call


class ChatCall:
    """One admitted chat completion: its slots and hold are released, and its usage settled,
    exactly once, however it ends (see the module docstring)."""

    def __init__(
        self,
        *,
        caller: Caller,
        request: ChatRequest,
        route: routing.ModelRoute,
        body: dict,
        request_id: str,
        prompt_estimate: int,
        max_tokens: int,
        trace: TraceContext | None = None,
    ) -> None:
        self.caller = caller
        self.trace = trace
        self.request_id = request_id
        # This call's span in its trace (a client's traceparent or a session's, else its own).
        self.span_id = new_span_id()
        self.trace_id = trace.trace_id if trace else new_trace_id()
        self.parent_span_id = trace.parent_span_id if trace else ""
        self.error_message = ""
        # The request and the answer, for the call's trace body (call_records.py): references
        # and one append per chunk, nothing more on the way; only when the body is stored.
        self.request_body = body
        self.keeps_body = caller.store_bodies and settings.TRACES_ENABLED
        self.answer_choices: list | None = None  # a plain answer's choices
        self.answer_deltas: dict[int, list[str]] = {}  # a stream's content, per choice
        self.answer_tool_deltas: dict[int, list] = {}  # its tool-call fragments, per choice
        self.answer_finish_reasons: dict[int, str] = {}
        self.model = route.model_id
        self.stream = bool(request.stream)
        self.usage: dict | None = None
        self.time_to_first_token_ms: int | None = None
        self.finish_reason: str | None = None
        self.deployment: str = ""
        self.tokens_counted_by_gateway = False
        self._engine_usage: dict | None = None
        self._request = request
        self._route = route
        self._body = body
        self._prompt_estimate = prompt_estimate
        self._max_tokens = max_tokens
        self._counter = tokens.CompletionCounter()
        self._lease: Lease | None = None
        self._hold: credit_holds.Hold | None = None
        self._response: httpx.Response | None = None
        self._created_at = datetime.now(UTC)
        self._started = time.monotonic()
        self._finishing: asyncio.Task | None = None
        self._settlement: asyncio.Task | None = None
        self._consumed = False
        self._charged = True

    # --- admission ---------------------------------------------------------------------------

    async def _admit(self) -> None:
        """Slots, then the reservation; on refusal nothing stays taken."""
        _in_flight[self.request_id] = self
        try:
            self._lease = await acquire_slots(
                user_id=self.caller.user_id,
                user_limit=self.caller.user_concurrency,
                project_id=self.caller.project_id,
                project_limit=self.caller.project_concurrency,
                request_id=self.request_id,
            )
        except BaseException:
            _in_flight.pop(self.request_id, None)
            raise
        # The hold may run in a thread that a cancellation cannot stop: shield it, and if the
        # caller goes away meanwhile, wait for it and undo it rather than leak the hold.
        reserve = asyncio.ensure_future(credit_holds.hold(self._hold_request()))
        try:
            self._hold = await asyncio.shield(reserve)
        except QuotaExceeded:
            _in_flight.pop(self.request_id, None)
            await asyncio.shield(self._lease.release())
            raise errors.insufficient_quota() from None
        except BaseException:
            _in_flight.pop(self.request_id, None)
            await asyncio.shield(asyncio.ensure_future(self._undo_admission(reserve)))
            raise

    async def _undo_admission(self, reserve: asyncio.Future) -> None:
        try:
            hold = await reserve
            await hold.release_unused()
        except Exception:
            pass  # the reservation failed: nothing to undo
        finally:
            await self._lease.release()

    def _hold_request(self) -> HoldRequest:
        """The worst case to hold, and what a `lost` settlement would need if this process
        died before settling (the reservation is the request's write-ahead record)."""
        caller = self.caller
        return HoldRequest(
            request_id=self.request_id,
            organization_id=caller.organization_id,
            amount_micros=self.worst_case_cost_micros(),
            holder=credit_holds.holder_token(),
            user_id=caller.user_id,
            api_key_prefix=caller.api_key_prefix,
            team=caller.team,
            project=caller.project,
            model=self.model,
            source=caller.source,
            prompt_tokens=self._prompt_estimate,
            input_price_micros=self._route.input_price_micros,
            output_price_micros=self._route.output_price_micros,
        )

    def worst_case_cost_micros(self) -> int:
        return usage_cost_micros(
            prompt_tokens=self._prompt_estimate,
            completion_tokens=self._max_tokens * (self._request.n or 1),
            input_price_micros=self._route.input_price_micros,
            output_price_micros=self._route.output_price_micros,
        )

    def _engine_payload(self, target: routing.DeploymentTarget) -> dict:
        payload = dict(self._body)
        payload["model"] = target.engine_model
        payload.pop("max_completion_tokens", None)
        # llama.cpp's own length parameter wins over max_tokens there: the cap is ours alone.
        payload.pop("n_predict", None)
        # Always capped: the reservation covers exactly this many completion tokens.
        payload["max_tokens"] = self._max_tokens
        if self.stream:
            payload["stream"] = True
            payload["stream_options"] = {"include_usage": True}
        else:
            payload["stream"] = False
            payload.pop("stream_options", None)
        return payload

    async def _open(self) -> None:
        """Open the engine request on the first deployment that takes it."""
        try:
            failure: engine_client.EngineUnavailable | None = None  # the last answered failure
            busy = False  # some deployment answered 429/503: overloaded, not down
            for target in routing.candidates(self._route):
                self.deployment = target.name
                try:
                    self._response = await engine_client.open_chat_completion(
                        target, self._engine_payload(target)
                    )
                except engine_client.EngineUnavailable as exc:
                    if exc.answered:
                        failure = exc  # an answer says more than a deployment that is down
                    busy = busy or (exc.answered and exc.overloaded)
                    await routing.record_failure(
                        target, exc, organization_id=self.caller.organization_id
                    )
                    continue
                routing.record_success(target)
                return
            if busy:
                raise errors.engine_overloaded()
            if failure is None:
                # Every deployment is out of rotation or gave no answer: the model is down.
                raise errors.model_unavailable(self._route.model_id)
            if failure.engine_message:
                # The engine's own words: when this request caused the error, they say how.
                raise errors.server_error(failure.engine_message)
            raise errors.server_error()
        except errors.GatewayError:
            # No engine took the request: like any other refusal, it costs nothing and leaves
            # no usage row (the slots and the hold are released).
            await self._settle(status="error", http_status=0, error_code="", record=False)
            raise
        except asyncio.CancelledError:
            await self._settle(status="cancelled", http_status=499, error_code="cancelled")
            raise
        except Exception:
            await self._settle(status="error", http_status=0, error_code="", record=False)
            raise

    # --- the answer --------------------------------------------------------------------------

    async def result(self) -> dict:
        """The chat.completion dict (non-streaming calls)."""
        if self._consumed:
            raise RuntimeError("the result of this call was already read")
        self._consumed = True
        try:
            completion = await engine_client.read_json(self._response)
            if not isinstance(completion, dict) or not isinstance(completion.get("choices"), list):
                raise ValueError(f"not a chat completion: {str(completion)[:200]}")
            self._take_completion(completion)
        except asyncio.CancelledError:
            await self._settle(status="cancelled", http_status=499, error_code="cancelled")
            raise
        except Exception as exc:
            log.warning("engine %s failed mid-answer: %r", self.deployment, exc)
            self.error_message = f"The engine failed mid-answer ({type(exc).__name__})."
            # A plain answer is all or nothing: the caller got nothing, so is charged nothing.
            self._charged = False
            await self._settle(status="error", http_status=500, error_code="server_error")
            raise errors.server_error() from None
        await self._settle(status="ok", http_status=200, error_code="")
        return completion

    def _take_completion(self, completion: dict) -> None:
        """Account for the engine's answer and make it ours (id, model, usage)."""
        self._mark_first_token()
        completion["id"] = self.request_id
        completion["model"] = self.model
        completion.pop("timings", None)  # llama.cpp's extra; not part of the OpenAI shape
        if self.keeps_body:
            self.answer_choices = completion["choices"]
        for choice in completion["choices"]:
            message = choice.get("message") or {}
            self._counter.add_text(message.get("content") or "")
            self._counter.add_text(str(message.get("tool_calls") or ""))
            self.finish_reason = choice.get("finish_reason") or self.finish_reason
        self._take_usage(completion.get("usage"))
        completion["usage"] = self._final_usage()

    async def chunks(self) -> AsyncIterator[dict]:
        """chat.completion.chunk dicts (streaming calls), then the usage chunk if asked for."""
        batches = self.chunk_batches()
        try:
            async for batch in batches:
                for chunk in batch:
                    yield chunk
        finally:
            await batches.aclose()

    async def chunk_batches(self) -> AsyncIterator[list[dict]]:
        """The chunks of `chunks()`, grouped as they arrived from the engine (one network read
        each): the API view writes a group at once."""
        if self._consumed:
            raise RuntimeError("the chunks of this call were already read")
        self._consumed = True
        status, http_status, error_code = "cancelled", 499, "cancelled"
        try:
            created = None
            try:
                first_token_sent = False
                async for events in engine_client.iter_event_batches(self._response):
                    batch = []
                    for chunk in events:
                        if "error" in chunk:
                            message = engine_client.error_message_of(chunk)
                            self.error_message = message or "The engine reported an error."
                            error = errors.server_error(message) if message else None
                            status, http_status, error_code = "error", 500, "server_error"
                            batch.append((error or errors.server_error()).body())
                            yield batch
                            return
                        if self._take_chunk(chunk):
                            created = chunk.get("created", created)
                            batch.append(chunk)
                            if not first_token_sent and self.time_to_first_token_ms is not None:
                                # The first token goes out at once, not after the rest of a
                                # burst that arrived with it.
                                first_token_sent = True
                                yield batch
                                batch = []
                    if batch:
                        yield batch
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("engine %s failed mid-stream: %r", self.deployment, exc)
                self.error_message = f"The engine failed mid-stream ({type(exc).__name__})."
                status, http_status, error_code = "error", 500, "server_error"
                yield [errors.server_error().body()]
                return
            except Exception:
                log.exception("streaming %s failed", self.request_id)
                self.error_message = "The gateway failed mid-stream."
                status, http_status, error_code = "error", 500, "server_error"
                yield [errors.server_error().body()]
                return
            status, http_status, error_code = "ok", 200, ""
            if self._request.include_usage:
                yield [
                    {
                        "id": self.request_id,
                        "object": "chat.completion.chunk",
                        "created": created or int(self._created_at.timestamp()),
                        "model": self.model,
                        "choices": [],
                        "usage": self._final_usage(),
                    }
                ]
        finally:
            # Runs on normal end, on error, on CancelledError (client gone) and on
            # GeneratorExit (the consumer dropped or closed the iterator).
            await self._settle(status=status, http_status=http_status, error_code=error_code)

    def _take_chunk(self, chunk: dict) -> bool:
        """Account for an engine chunk and make it ours; False when it is not for the caller
        (the engine's own usage chunk: ours comes at the end, if asked for)."""
        self._take_usage(chunk.pop("usage", None))
        choices = chunk.get("choices")
        if not choices:
            return False
        chunk["id"] = self.request_id
        chunk["model"] = self.model
        chunk.pop("timings", None)  # llama.cpp's extra; not part of the OpenAI shape
        keep = self.keeps_body
        for choice in choices:
            delta = choice.get("delta") or {}
            content = delta.get("content")
            index = choice.get("index", 0) if keep else 0
            if type(index) is not int:
                index = 0  # an engine's nonsense must not stop the stream
            if content:
                self._mark_first_token()
                self._counter.add_text(content)
                if keep:
                    _kept(self.answer_deltas, index).append(content)
            tool_calls = delta.get("tool_calls")
            if tool_calls:
                self._mark_first_token()
                self._counter.add_text(str(tool_calls))
                if keep:
                    _kept(self.answer_tool_deltas, index).append(tool_calls)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
                if keep:
                    self.answer_finish_reasons[index] = self.finish_reason
        return True

    async def aclose(self) -> None:
        """Stop the call: cancel the engine request if running, release, settle. Idempotent."""
        await self._settle(status="cancelled", http_status=499, error_code="cancelled")

    # --- bookkeeping -------------------------------------------------------------------------

    def _mark_first_token(self) -> None:
        if self.time_to_first_token_ms is None:
            self.time_to_first_token_ms = int((time.monotonic() - self._started) * 1000)

    def _take_usage(self, usage: dict | None) -> None:
        """Remember the engine's usage report, if this chunk or body carries one (its counts
        kept within what a usage row can hold: an engine's nonsense must not make the row
        unwritable)."""
        if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
            usage = dict(usage)
            for field in ("prompt_tokens", "completion_tokens"):
                if isinstance(usage.get(field), int):
                    usage[field] = min(max(usage[field], 0), MAX_TOKEN_COUNT)
            self._engine_usage = usage

    def _final_usage(self) -> dict:
        """The engine's usage; when it gave none, the gateway's count (and say so)."""
        if self._engine_usage is not None:
            usage = dict(self._engine_usage)
            if not isinstance(usage.get("prompt_tokens"), int):
                usage["prompt_tokens"] = self._prompt_estimate
            usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
            self.tokens_counted_by_gateway = False
        else:
            # The estimate (chunks, or characters / 4) can pass what the engine may have
            # generated; the engine was told max_tokens, so no more was produced.
            prompt = self._prompt_estimate
            completion = min(self._counter.tokens, self._max_tokens * (self._request.n or 1))
            usage = {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            }
            self.tokens_counted_by_gateway = True
        self.usage = usage
        return usage

    async def _settle(
        self, *, status: str, http_status: int, error_code: str, record: bool = True
    ) -> None:
        """Finish the call once: close the engine stream, free the slots, submit the usage.

        The work runs in its own task and is awaited through a shield, so a cancelled caller
        (client disconnect) cannot interrupt it half-way. The usage row itself is written in
        the background (see settlement.py); `wait_settled()` waits for it.
        """
        if self._finishing is None:
            self._finishing = asyncio.ensure_future(
                self._finish(
                    status=status, http_status=http_status, error_code=error_code, record=record
                )
            )
        await asyncio.shield(self._finishing)

    async def wait_settled(self) -> None:
        """Wait until the usage row is written (or the hold released, for a refused call)."""
        if self._finishing is not None:
            await asyncio.shield(self._finishing)
        if self._settlement is not None:
            await asyncio.shield(self._settlement)

    async def _finish(
        self, *, status: str, http_status: int, error_code: str, record: bool
    ) -> None:
        try:
            await self._finish_steps(
                status=status, http_status=http_status, error_code=error_code, record=record
            )
        finally:
            # Only now: until its usage is submitted (or its hold released), a call the server
            # abandons at exit is still settled by the exit hook.
            _in_flight.pop(self.request_id, None)

    async def _finish_steps(
        self, *, status: str, http_status: int, error_code: str, record: bool
    ) -> None:
        if self._response is not None:
            try:
                await self._response.aclose()
            except Exception:
                log.exception("closing the engine response of %s", self.request_id)
        if self._lease is not None:
            try:
                await self._lease.release()
            except Exception:
                log.exception("releasing the slots of %s", self.request_id)
        if not record:
            try:
                await self._hold.release_unused()
            except Exception:
                log.exception("releasing the reservation of %s failed", self.request_id)
            return
        report = self._usage_report(status=status, http_status=http_status, error_code=error_code)
        self._settlement = await settlement.settle(report, self._call_report(report))
        self._hold.settled_by(self._settlement)

    def _call_report(self, usage: UsageReport) -> CallReport | None:
        """The call's trace report, from the same finish as `usage`; None when traces are off
        (or, never expected, it cannot be made: settlement then writes a metadata-only call,
        and the usage row is never held back by a trace)."""
        if not settings.TRACES_ENABLED:
            return None
        try:
            return call_records.call_report(self, usage)
        except Exception:
            log.exception("could not make the trace report of %s", self.request_id)
            return None

    def _usage_report(self, *, status: str, http_status: int, error_code: str) -> UsageReport:
        # Nothing reached the engine's answer yet (refused, cancelled while opening): nothing
        # was generated, so the prompt is not charged either.
        opened = self._response is not None and self._charged
        usage = self._final_usage() if opened else {"prompt_tokens": 0, "completion_tokens": 0}
        return UsageReport(
            request_id=self.request_id,
            organization_id=self.caller.organization_id,
            user_id=self.caller.user_id,
            api_key_prefix=self.caller.api_key_prefix,
            team=self.caller.team,
            project=self.caller.project,
            model=self.model,
            deployment=self.deployment,
            source=self.caller.source,
            status=status,
            http_status=http_status,
            error_code=error_code,
            prompt_tokens=int(usage["prompt_tokens"]),
            completion_tokens=int(usage["completion_tokens"]),
            tokens_counted_by_gateway=self.tokens_counted_by_gateway and opened,
            time_to_first_token_ms=self.time_to_first_token_ms,
            duration_ms=int((time.monotonic() - self._started) * 1000),
            input_price_micros=self._route.input_price_micros,
            output_price_micros=self._route.output_price_micros,
            created_at=self._created_at,
            finished_at=datetime.now(UTC),
            max_cost_micros=self._hold.amount_micros if self._hold else None,
        )


def _kept(parts: dict[int, list], index: int) -> list:
    kept = parts.get(index)
    if kept is None:
        kept = parts[index] = []
    return kept


# Calls admitted and not yet finished. When the server stops, daphne abandons running
# requests without cancelling them, so their `finally` never runs: at exit, each is settled
# with what it produced so far (or, not yet answered by an engine, has its hold released).
_in_flight: dict[str, ChatCall] = {}


@atexit.register
def _settle_in_flight_at_exit() -> None:
    for call in list(_in_flight.values()):
        try:
            if call._response is None:
                release_reservation(request_id=call.request_id)
            else:
                report = call._usage_report(
                    status="cancelled", http_status=499, error_code="server_shutdown"
                )
                settlement.settle_at_exit(report, call._call_report(report))
        except Exception:
            log.exception("could not settle %s at exit", call.request_id)
    _in_flight.clear()
