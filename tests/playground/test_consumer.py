"""The Playground/Compare websocket against the real ASGI application and bench's fake engine.

The engine is a real HTTP server (bench/fake_engine.py in a subprocess); everything between the
socket and it (session auth, origin check, gateway admission, quota, usage rows) is the product.
"""

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.sessions.models import Session
from django.test import Client

from billing.models import Organization, UsageRecord
from inference_app.asgi import application
from inference_app.catalog import sync_catalog
from inference_app.gateway import settlement
from inference_app.models import CatalogModel, Deployment, Profile
from tests.support.stack import CLOSED_ENGINE_URL

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
async def settlements_drained():
    """Usage rows are written in the background: finish them inside the test (before the flush)."""
    yield
    await settlement.drain()


async def usage_rows(*fields) -> list[dict]:
    await settlement.drain()
    return await sync_to_async(list)(UsageRecord.objects.values(*fields))


FAST = "meta-llama/Llama-3.1-8B-Instruct"
FAST_2 = "microsoft/Phi-4-mini-instruct"
SLOW = "meta-llama/Llama-3.3-70B-Instruct"
DOWN = "meta-llama/Llama-4-Scout-17B-16E-Instruct"
ORIGIN = (b"origin", b"http://testserver")


@pytest.fixture
def deployments(fake_engine):
    sync_catalog()  # a transactional test's flush also empties the seeded catalog
    for name, model_id, upstream in (
        ("fake-fast", FAST, "fast-model"),
        ("fake-fast-2", FAST_2, "fast-model"),
        ("fake-slow", SLOW, "slow-model"),
    ):
        Deployment.objects.create(
            name=name,
            model=CatalogModel.objects.get(model_id=model_id),
            base_url=fake_engine.base_url,
            upstream_model=upstream,
        )


def session_cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def connect(user, *, origin=ORIGIN):
    headers = [(b"host", b"testserver")]  # the Origin is compared with it
    if origin:
        headers.append(origin)
    if user is not None:
        headers.append((b"cookie", await sync_to_async(session_cookie)(user)))
    communicator = WebsocketCommunicator(application, "/ws/playground/", headers=headers)
    connected, code = await communicator.connect(timeout=5)
    return communicator, connected, code


def run_message(pane: str, model: str, text: str = "Hello", **params) -> dict:
    return {
        "type": "run",
        "pane": pane,
        "run": f"run-{pane}",
        "model": model,
        "messages": [{"role": "user", "content": text}],
        "params": {"max_tokens": 100, **params},
    }


async def events_until(communicator, done_panes: set[str], *, timeout: float = 20) -> list[dict]:
    """Every event received until each pane in `done_panes` has ended (done or error)."""
    events, ended = [], set()
    async with asyncio.timeout(timeout):
        while not done_panes <= ended:
            event = json.loads(await communicator.receive_from(timeout=timeout))
            events.append(event)
            if event["type"] in ("done", "error"):
                ended.add(event["pane"])
    return events


def index_of(events, kind: str, pane: str) -> int:
    return next(i for i, e in enumerate(events) if e["type"] == kind and e["pane"] == pane)


async def test_compare_three_panes_fast_ones_finish_before_the_slow_one(member, deployments):
    user, project = member
    ws, connected, _ = await connect(user)
    assert connected
    await ws.send_json_to(run_message("slow", SLOW))
    await ws.send_json_to(run_message("fast1", FAST))
    await ws.send_json_to(run_message("fast2", FAST_2))
    events = await events_until(ws, {"slow", "fast1", "fast2"})
    await ws.disconnect()

    assert [e for e in events if e["type"] == "error"] == []
    slow_done = index_of(events, "done", "slow")
    # The slow pane was sent first, yet both fast panes finish before it even starts talking
    # much: one task per pane, nothing waits for the slow one.
    assert index_of(events, "done", "fast1") < slow_done
    assert index_of(events, "done", "fast2") < slow_done
    first_slow_delta = index_of(events, "delta", "slow")
    assert index_of(events, "done", "fast1") < first_slow_delta
    for pane in ("slow", "fast1", "fast2"):
        done = events[index_of(events, "done", pane)]
        text = "".join(e["content"] for e in events if e["type"] == "delta" and e["pane"] == pane)
        assert text
        assert done["run"] == f"run-{pane}"
        assert done["finish_reason"] in ("stop", "length")
        assert done["completion_tokens"] > 0 and done["prompt_tokens"] > 0
        assert done["ttft_ms"] is not None and done["cost_micros"] > 0
    # Live metrics arrived for the slow pane while it streamed.
    assert any(e["type"] == "metrics" and e["pane"] == "slow" for e in events)

    rows = await usage_rows("source", "model", "project")
    assert len(rows) == 3
    assert {r["source"] for r in rows} == {"playground"}
    assert {r["model"] for r in rows} == {FAST, FAST_2, SLOW}
    assert {r["project"] for r in rows} == {project.name}


async def test_stopping_one_pane_leaves_the_others_running(member, deployments):
    user, _ = member
    ws, connected, _ = await connect(user)
    assert connected
    for pane in ("a", "b", "c"):
        await ws.send_json_to(run_message(pane, SLOW))
    # Wait until every pane is streaming, then stop "b" only.
    seen: set[str] = set()
    events: list[dict] = []
    async with asyncio.timeout(10):
        while seen != {"a", "b", "c"}:
            event = json.loads(await ws.receive_from(timeout=10))
            events.append(event)
            if event["type"] == "delta":
                seen.add(event["pane"])
    await ws.send_json_to({"type": "stop", "pane": "b"})
    events += await events_until(ws, {"a", "b", "c"})
    await ws.disconnect()

    done = {p: events[index_of(events, "done", p)] for p in ("a", "b", "c")}
    assert done["b"]["finish_reason"] == "stopped"
    assert done["a"]["finish_reason"] in ("stop", "length")
    assert done["c"]["finish_reason"] in ("stop", "length")
    # The stopped pane got fewer tokens; the others kept streaming after the stop.
    assert done["b"]["completion_tokens"] < done["a"]["completion_tokens"]
    stopped_at = index_of(events, "done", "b")
    assert any(e["type"] == "delta" and e["pane"] == "a" for e in events[stopped_at:])
    # Three usage rows: the stopped one billed for what it produced.
    rows = await usage_rows("source", "completion_tokens")
    assert len(rows) == 3 and {r["source"] for r in rows} == {"playground"}


async def test_stop_all_ends_every_pane(member, deployments):
    user, _ = member
    ws, _, _ = await connect(user)
    for pane in ("a", "b"):
        await ws.send_json_to(run_message(pane, SLOW))
    event = json.loads(await ws.receive_from(timeout=10))
    assert event["type"] in ("start", "delta")
    await ws.send_json_to({"type": "stop_all"})
    events = await events_until(ws, {"a", "b"})
    await ws.disconnect()
    assert {e["finish_reason"] for e in events if e["type"] == "done"} == {"stopped"}


async def test_unauthenticated_socket_is_refused(db):
    ws, connected, code = await connect(None)
    assert not connected
    assert code == 4401


async def test_signing_out_elsewhere_ends_the_open_socket(member, deployments):
    user, _ = member
    ws, connected, _ = await connect(user)
    assert connected
    await Session.objects.all().adelete()  # what sign-out (in any tab) does to the session
    await ws.send_json_to(run_message("p", FAST))
    error = json.loads(await ws.receive_from(timeout=10))
    assert error["type"] == "error" and error["status"] == 401
    assert (await ws.receive_output(timeout=5))["type"] == "websocket.close"
    assert await UsageRecord.objects.acount() == 0


async def test_cross_origin_socket_is_refused(member):
    user, _ = member
    ws, connected, _ = await connect(user, origin=(b"origin", b"http://evil.example"))
    assert not connected


async def test_gateway_errors_reach_the_pane_as_readable_messages(member, deployments):
    user, project = member
    ws, connected, _ = await connect(user)
    assert connected
    await ws.send_json_to(run_message("nodeploy", "deepseek-ai/DeepSeek-R1-0528"))
    error = json.loads(await ws.receive_from(timeout=10))
    assert error["type"] == "error" and error["pane"] == "nodeploy"
    assert error["code"] == "model_not_found" and error["status"] == 404

    await ws.send_json_to(run_message("big", FAST, max_tokens=10_000_000))
    error = json.loads(await ws.receive_from(timeout=10))
    assert error["code"] == "invalid_request_error" and "context length" in error["message"]

    # An engine that is down.
    await Deployment.objects.acreate(
        name="down",
        model=await CatalogModel.objects.aget(model_id=DOWN),
        base_url=CLOSED_ENGINE_URL,
    )
    await ws.send_json_to(run_message("down", DOWN))
    error = json.loads(await ws.receive_from(timeout=20))
    assert error["pane"] == "down" and error["status"] == 503
    assert error["message"] == f"The model `{DOWN}` is unavailable right now."

    # Credits spent: the quota error, as the API would answer it. (Drained first, so that no
    # usage row is written after the balance is set.)
    await settlement.drain()
    await Organization.objects.filter(pk=project.team.organization_id).aupdate(balance_micros=0)
    await ws.send_json_to(run_message("broke", FAST))
    error = json.loads(await ws.receive_from(timeout=10))
    assert error["code"] == "insufficient_quota" and error["status"] == 429
    assert "exceeded your current quota" in error["message"]
    await ws.disconnect()
    assert [r for r in await usage_rows("status") if r["status"] == "ok"] == []


async def test_concurrency_limit_applies_to_panes_like_to_api_calls(member, deployments):
    user, _ = member
    await Profile.objects.filter(user=user).aupdate(concurrency_limit=1)
    ws, _, _ = await connect(user)
    await ws.send_json_to(run_message("first", SLOW))
    started = json.loads(await ws.receive_from(timeout=10))
    assert started["type"] == "start" and started["pane"] == "first"
    await ws.send_json_to(run_message("second", FAST))
    events = await events_until(ws, {"second"})
    error = events[-1]
    assert error["type"] == "error" and error["pane"] == "second"
    assert error["status"] == 429 and error["message"] == "Concurrency limit reached for requests"
    # The first pane is unaffected and its slot frees when it ends.
    await events_until(ws, {"first"})
    await ws.send_json_to(run_message("third", FAST))
    assert (await events_until(ws, {"third"}))[-1]["type"] == "done"
    await ws.disconnect()


async def test_images_for_a_text_model_and_oversized_messages_are_refused(
    member, deployments, settings
):
    user, _ = member
    ws, _, _ = await connect(user)
    message = run_message("eyes", FAST)
    message["messages"][0]["content"] = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
    ]
    await ws.send_json_to(message)
    error = json.loads(await ws.receive_from(timeout=10))
    assert error["type"] == "error" and error["status"] == 400
    assert "does not support image" in error["message"]

    settings.MAX_REQUEST_BYTES = 2000
    await ws.send_json_to(run_message("huge", FAST, text="x" * 3000))
    error = json.loads(await ws.receive_from(timeout=10))
    assert error["pane"] == "huge" and error["code"] == "request_too_large"
    await ws.disconnect()


async def test_malformed_run_is_answered_not_crashed(member, deployments):
    user, _ = member
    ws, _, _ = await connect(user)
    await ws.send_to(text_data="not json")
    assert json.loads(await ws.receive_from())["type"] == "error"
    await ws.send_json_to({"type": "run", "pane": "p", "model": FAST, "messages": []})
    event = json.loads(await ws.receive_from())
    assert event["type"] == "error" and event["pane"] == "p"
    # The socket still works afterwards.
    await ws.send_json_to(run_message("p", FAST))
    events = await events_until(ws, {"p"})
    assert events[-1]["type"] == "done"
    await ws.disconnect()
