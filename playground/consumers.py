"""The Playground/Compare websocket: one socket per page, one asyncio task per pane.

Client -> server:
  {"type": "run", "pane": "p1", "run": "r7", "model": ..., "messages": [...], "params": {...},
   "kind": "chat" | "compare" (the page: the run joins a trace session), "session": <the
   session the page shows>, "draft": "d1" (the page's name for a session not yet created),
   "panes": ["p1", "p2"] (Compare: the page's panes, in order)}
  A blind arena pane sends "arena": {"match": <match id>, "pane": <index>} instead of a model:
  the model and parameters come from the voter's match (evaluations/arena_runs.py), the run
  joins no trace session, and its events carry no cost and no model name.
  {"type": "stop", "pane": "p1"}    {"type": "stop_all"}
Server -> client (every event carries "pane" and the "run" it belongs to):
  session {id, kind, draft} (the run started a new trace session; the page puts it in its
  URL) ·
  start {request_id} · delta {content} · metrics {elapsed_ms, ttft_ms, tokens_per_s,
  prompt_tokens, completion_tokens, cost_micros} · done {finish_reason, ...metrics} ·
  error {message, code, status, param}

A message the socket cannot act on is answered with an error event (status 400, code
invalid_request_error, "pane" null when it names none) and the socket stays open: a bad
message from one pane never ends the others' runs.
"""

import asyncio
import json
import logging

from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from evaluations.arena_runs import blind_pane
from inference_app.gateway import GatewayError, admission, errors
from playground.chat_requests import MAX_PANES, PlaygroundRequestError, chat_body_build
from playground.chat_runs import COMPARE_SOURCE, SOURCE, error_event, pane_run
from playground.chat_sessions import run_session
from playground.selectors import current_project
from traces.models import Session
from traces.reports import TraceContext
from traces.sessions import pane_key

logger = logging.getLogger(__name__)

# "Unauthorized", in the 4000-4999 range applications may use.
CLOSE_UNAUTHENTICATED = 4401
# A run from the Playground ("chat") or Compare page belongs to a trace session (its history);
# a run message without a kind (a script on the socket) runs without one.
KINDS = ("chat", "compare")
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
        # Sessions this socket created, by (kind, draft): the runs a page sends before it hears
        # of its new session (every pane of a first Compare message) join that one session.
        self.created_sessions: dict[tuple[str, str], str] = {}
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
        blind = None
        try:
            if self.refusal is not None:
                raise self.refusal
            # The API's 413, for the same reason (images are the usual cause).
            admission.check_size(size)
            if pane not in self.runs and len(self.runs) >= MAX_PANES:
                raise errors.invalid_request(f"At most {MAX_PANES} panes run at once.")
            model, params = message.get("model"), message.get("params")
            if "arena" in message:
                blind = await sync_to_async(blind_pane)(
                    arena=message["arena"], voter_id=self.scope["user"].pk
                )
                model, params = blind.model, blind.params
                emit = blind.wrap(emit)
            body = chat_body_build(model=model, messages=message.get("messages"), params=params)
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
        trace, source = None, SOURCE
        if blind is not None:
            # Traced under the match (its id is a trace id), with no history session: a session's
            # layout (the History menu) would name the pane's model. The vote reads the answers
            # back from these calls, and Traces hides them until the vote.
            source = COMPARE_SOURCE
            trace = TraceContext(
                trace_id=blind.match_id, session_id=blind.match_id, pane=f"arena-{blind.index}"
            )
        elif project is not None and message.get("kind") in KINDS:
            session = await self._session(message, user=user, project=project, pane=pane, body=body)
            if session is not None:
                trace = TraceContext(
                    trace_id=session.trace_id, session_id=session.id, pane=pane_key(pane)
                )
                if session.kind == Session.Kind.COMPARE:
                    source = COMPARE_SOURCE
        task = asyncio.create_task(
            pane_run(
                user=user,
                project_path=project.path if project else None,
                body=body,
                emit=emit,
                trace=trace,
                source=source,
            )
        )
        self.runs[pane] = task
        task.add_done_callback(
            lambda t: self.runs.pop(pane, None) if self.runs.get(pane) is t else None
        )

    async def _session(self, message: dict, *, user, project, pane: str, body: dict):
        """The trace session this run writes to (a new one is announced to the page)."""
        kind = message["kind"]
        fallback_key = (kind, _id(message.get("draft")) or "")
        try:
            session, created = await sync_to_async(run_session)(
                user_id=user.pk,
                project=project,
                session_id=_id(message.get("session")),
                fallback_id=self.created_sessions.get(fallback_key),
                kind=kind,
                pane=pane,
                body=body,
                pane_order=message.get("panes"),
            )
        except Exception:
            # History is a convenience: the chat itself still runs (without a session).
            logger.exception("playground session could not be written")
            return None
        if created:
            self.created_sessions[fallback_key] = session.id
            await self._send_event(
                {
                    "type": "session",
                    "id": session.id,
                    "kind": session.kind,
                    "draft": fallback_key[1],
                    "pane": pane,
                    "run": message.get("run"),
                }
            )
        return session

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
