"""A signed-in Playground socket for consumer tests, and raw run messages to send on it."""

import asyncio
import json

from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from inference_app.asgi import application
from inference_app.catalog import sync_catalog
from inference_app.models import CatalogModel, Deployment

FAST = "meta-llama/Llama-3.1-8B-Instruct"
# What a browser on the test server sends with the handshake.
HEADERS = [(b"origin", b"http://testserver"), (b"host", b"testserver")]


def fast_deployment_create(engine) -> None:
    """FAST, served by bench's fake engine (a transactional test's flush empties the catalog)."""
    sync_catalog()
    Deployment.objects.create(
        name="fake-fast",
        model=CatalogModel.objects.get(model_id=FAST),
        base_url=engine.base_url,
        upstream_model="fast-model",
    )


def _session_cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def connect(user, *extra_headers) -> WebsocketCommunicator:
    cookie = await sync_to_async(_session_cookie)(user)
    communicator = WebsocketCommunicator(
        application, "/ws/playground/", headers=[*HEADERS, (b"cookie", cookie), *extra_headers]
    )
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    return communicator


def run_text(*, model='"' + FAST + '"', messages=None, params='{"max_tokens": 20}', pane='"p"'):
    """A run message as raw JSON text: some hostile values (1e309, NaN) have no Python spelling
    that json.dumps would write."""
    messages = messages or '[{"role": "user", "content": "Hello"}]'
    return (
        f'{{"type": "run", "pane": {pane}, "run": "r1", "model": {model}, '
        f'"messages": {messages}, "params": {params}}}'
    )


async def next_event(ws) -> dict:
    return json.loads(await ws.receive_from(timeout=10))


async def assert_still_usable(ws) -> None:
    """A good run on pane "ok" completes."""
    await ws.send_to(text_data=run_text(pane='"ok"'))
    async with asyncio.timeout(20):
        while True:
            event = await next_event(ws)
            if event["pane"] == "ok" and event["type"] in ("done", "error"):
                break
    assert event["type"] == "done", event
