"""The Playground/Compare websocket: one socket per page, one asyncio task per pane.

Client -> server:
  {"type": "run", "pane": "p1", "run": "r7", "model": ..., "messages": [...], "params": {...}}
  {"type": "stop", "pane": "p1"}    {"type": "stop_all"}
Server -> client (every event carries "pane" and the "run" it belongs to):
  start {request_id} · delta {content} · metrics {elapsed_ms, ttft_ms, tokens_per_s,
  prompt_tokens, completion_tokens, cost_micros} · done {finish_reason, ...metrics} ·
  error {message, code, status}
"""

import asyncio
import json

from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from playground.chat_requests import MAX_PANES, PlaygroundRequestError, chat_body_build
from playground.chat_runs import pane_run
from playground.selectors import current_project

# "Unauthorized", in the 4000-4999 range applications may use.
CLOSE_UNAUTHENTICATED = 4401


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
        await self.accept()

    async def disconnect(self, code):
        await self._stop(list(self.runs))

    async def receive(self, text_data=None, bytes_data=None):
        try:
            message = json.loads(text_data or "")
        except ValueError:
            message = None
        if not isinstance(message, dict):
            await self._send_event({"type": "error", "message": "Malformed message", "code": None})
            return
        kind = message.get("type")
        if kind == "run":
            await self._start(message, size=len(text_data))
        elif kind == "stop":
            await self._stop([str(message.get("pane"))])
        elif kind == "stop_all":
            await self._stop(list(self.runs))

    async def _start(self, message: dict, *, size: int) -> None:
        pane, run = str(message.get("pane") or ""), message.get("run")
        emit = self._emitter(pane, run)
        if size > settings.MAX_REQUEST_BYTES:
            # The API's 413, for the same reason (images are the usual cause).
            await emit(
                {
                    "type": "error",
                    "message": "The message is too large.",
                    "code": "request_too_large",
                }
            )
            return
        if pane not in self.runs and len(self.runs) >= MAX_PANES:
            await emit(
                {
                    "type": "error",
                    "message": f"At most {MAX_PANES} panes run at once.",
                    "code": None,
                }
            )
            return
        if not await self._session_alive():
            # Signed out (here or in another tab) since the socket opened: it stops working.
            await emit(
                {
                    "type": "error",
                    "message": "Your session has ended: sign in again.",
                    "code": "invalid_api_key",
                    "status": 401,
                }
            )
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        try:
            body = chat_body_build(
                model=message.get("model"),
                messages=message.get("messages"),
                params=message.get("params"),
            )
        except PlaygroundRequestError as exc:
            await emit({"type": "error", "message": str(exc), "code": "invalid_request_error"})
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

    def _emitter(self, pane: str, run):
        async def emit(event: dict) -> None:
            await self._send_event({**event, "pane": pane, "run": run})

        return emit

    async def _send_event(self, event: dict) -> None:
        await self.send(text_data=json.dumps(event))
