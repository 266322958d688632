"""The Playground/Compare websocket: one socket per page, one asyncio task per pane.

Client -> server:
  {"type": "run", "pane": "p1", "run": "r7", "model": ..., "messages": [...], "params": {...}}
  {"type": "stop", "pane": "p1"}    {"type": "stop_all"}
Server -> client (every event carries "pane" and the "run" it belongs to):
  start {request_id} · delta {content} · metrics {elapsed_ms, ttft_ms, tokens_per_s,
  prompt_tokens, completion_tokens, cost_micros} · done {finish_reason, ...metrics} ·
  error {message, code, status, param}

A message the socket cannot act on is answered with an error event (status 400, code
invalid_request_error, "pane" null when it names none) and the socket stays open: a bad
message from one pane never ends the others' runs.
"""

import asyncio
import json

from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from inference_app.gateway import GatewayError, admission, errors
from playground.chat_requests import MAX_PANES, PlaygroundRequestError, chat_body_build
from playground.chat_runs import error_event, pane_run
from playground.selectors import current_project

# "Unauthorized", in the 4000-4999 range applications may use.
CLOSE_UNAUTHENTICATED = 4401
# Pane and run ids are short names the page makes up ("p1", "r7"); every event echoes them.
MAX_ID_CHARS = 100


def _id(value) -> str | None:
    """`value` as a pane or run id, or None when it is not one."""
    return value if isinstance(value, str) and 0 < len(value) <= MAX_ID_CHARS else None


class ChatConsumer(AsyncWebsocketConsumer):
    # Nothing is ever sent to this consumer through the channel layer: skip the per-socket
    # channel (with Redis that is a blocking receive loop per open page).
    channel_layer_alias = None

    async def connect(self):
        user = self.scope.get("user")
        self.runs: dict[str, asyncio.Task] = {}
        if user is None or not user.is_authenticated:
            # Closing before accept() refuses the handshake (HTTP 403 to the browser).
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        # The country header is the handshake's: it holds for the socket's life. A blocked
        # caller's socket opens and each run gets the API's 403 in its pane, which the page
        # shows; a refused handshake would only show as a connection retried forever.
        self.refusal: GatewayError | None = None
        try:
            admission.check_country_of_scope(self.scope)
        except GatewayError as exc:
            self.refusal = exc
        await self.accept()

    async def disconnect(self, code):
        await self._stop(list(self.runs))

    async def receive(self, text_data=None, bytes_data=None):
        if text_data is None:
            await self._refuse(None, None, "Messages must be JSON text, not binary frames.")
            return
        try:
            message = json.loads(text_data)
        except (ValueError, RecursionError):
            # RecursionError: arrays or objects nested some thousand levels deep.
            message = None
        if not isinstance(message, dict):
            await self._refuse(None, None, "Malformed message: send a JSON object.")
            return
        kind = message.get("type")
        if kind == "run":
            await self._start(message, size=_utf8_size(text_data))
        elif kind == "stop":
            pane = _id(message.get("pane"))
            if pane is None:
                await self._refuse(None, None, "A stop message names the pane to stop.")
                return
            await self._stop([pane])
        elif kind == "stop_all":
            await self._stop(list(self.runs))
        else:
            await self._refuse(None, None, "Unknown message type: use run, stop or stop_all.")

    async def _start(self, message: dict, *, size: int) -> None:
        pane, run = _id(message.get("pane")), message.get("run")
        if pane is None:
            await self._refuse(None, None, "A run message names its pane.")
            return
        if run is not None and _id(run) is None:
            await self._refuse(pane, None, "A run id is a short name.")
            return
        emit = self._emitter(pane, run)
        try:
            if self.refusal is not None:
                raise self.refusal
            # The API's 413, for the same reason (images are the usual cause).
            admission.check_size(size)
            if pane not in self.runs and len(self.runs) >= MAX_PANES:
                raise errors.invalid_request(f"At most {MAX_PANES} panes run at once.")
            body = chat_body_build(
                model=message.get("model"),
                messages=message.get("messages"),
                params=message.get("params"),
            )
        except PlaygroundRequestError as exc:
            await emit(error_event(errors.invalid_request(str(exc), param=exc.param)))
            return
        except GatewayError as exc:
            await emit(error_event(exc))
            return
        if not await self._session_alive():
            # Signed out (here or in another tab) since the socket opened: it stops working.
            await emit(
                error_event(errors.invalid_api_key("Your session has ended: sign in again."))
            )
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        await self._stop([pane])  # a rerun replaces the pane's current run
        user = self.scope["user"]
        project = await sync_to_async(current_project)(user=user)
        task = asyncio.create_task(
            pane_run(
                user=user, project_path=project.path if project else None, body=body, emit=emit
            )
        )
        self.runs[pane] = task
        task.add_done_callback(
            lambda t: self.runs.pop(pane, None) if self.runs.get(pane) is t else None
        )

    async def _session_alive(self) -> bool:
        session = self.scope.get("session")
        key = getattr(session, "session_key", None)
        return bool(key) and await sync_to_async(session.exists)(key)

    async def _stop(self, panes: list[str]) -> None:
        tasks = [self.runs.pop(p) for p in panes if p in self.runs]
        for task in tasks:
            task.cancel()
        # Wait for each run to settle (slots released, usage written) before the next message.
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _refuse(self, pane: str | None, run, message: str) -> None:
        await self._emitter(pane, run)(error_event(errors.invalid_request(message)))

    def _emitter(self, pane: str | None, run):
        async def emit(event: dict) -> None:
            await self._send_event({**event, "pane": pane, "run": run})

        return emit

    async def _send_event(self, event: dict) -> None:
        await self.send(text_data=json.dumps(event))


def _utf8_size(text: str) -> int:
    # The size on the wire, as the API's limit counts a body: characters are up to 4 bytes.
    return len(text) if text.isascii() else len(text.encode("utf-8"))
