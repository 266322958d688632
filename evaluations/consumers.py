"""An evaluation's live progress: /ws/evaluations/<id>/.

The socket polls the database (selectors.evaluation_progress) every POLL_SECONDS and sends the
snapshot when it changed, until the run is over (the last snapshot is terminal; then it closes).
Polling needs nothing from the runner: it works with any channel layer, and whichever worker
process or machine runs the predictions.

Who may watch: a signed-in user (the session cookie) who may read the evaluation's project
(inference_app.projects.projects_readable); the handshake's Origin is checked for every socket
by inference_app.ws_origin.SameOriginValidator in the ASGI stack. Anyone else is refused; an
evaluation the user may not read is refused exactly as one that does not exist.
"""

from __future__ import annotations

import asyncio
import json

from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from evaluations.models import Evaluation
from evaluations.selectors import evaluation_progress
from inference_app.projects import projects_readable

CLOSE_UNAUTHENTICATED = 4401
# "Not found" (also for an evaluation the user may not read: the socket does not tell which).
CLOSE_NOT_FOUND = 4404


def _may_read(user_id: int, evaluation_id: int) -> bool:
    readable = projects_readable(user_id=user_id).values("pk")
    return Evaluation.objects.filter(pk=evaluation_id, project_id__in=readable).exists()


class EvaluationProgressConsumer(AsyncWebsocketConsumer):
    # Nothing is sent to it through the channel layer: no per-socket channel.
    channel_layer_alias = None
    POLL_SECONDS = 1.0

    async def connect(self):
        self.poller = None
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        try:
            self.evaluation_id = int(self.scope["url_route"]["kwargs"]["evaluation_id"])
        except (KeyError, TypeError, ValueError):
            await self.close(code=CLOSE_NOT_FOUND)
            return
        if not await sync_to_async(_may_read)(user.pk, self.evaluation_id):
            await self.close(code=CLOSE_NOT_FOUND)
            return
        await self.accept()
        self.poller = asyncio.create_task(self._poll())

    async def disconnect(self, code):
        if self.poller is not None:
            self.poller.cancel()

    async def receive(self, text_data=None, bytes_data=None):
        pass  # the page only listens

    async def _poll(self) -> None:
        last = None
        while True:
            snapshot = await sync_to_async(evaluation_progress)(self.evaluation_id)
            if snapshot is None:  # deleted while watched
                await self.close(code=CLOSE_NOT_FOUND)
                return
            if snapshot != last:
                await self.send(text_data=json.dumps(snapshot))
                last = snapshot
            if snapshot["terminal"]:
                await self.close()
                return
            await asyncio.sleep(self.POLL_SECONDS)
