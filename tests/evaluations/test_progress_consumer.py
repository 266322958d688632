"""/ws/evaluations/<id>/: who may watch (a signed-in reader of the project, from this site's
pages), and the snapshots: one when the run moves, the last one terminal, then the socket
closes."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from evaluations.consumers import EvaluationProgressConsumer
from evaluations.models import Evaluation, Prediction
from inference_app.asgi import application
from tests.evaluations.test_pages import LLAMA, PHI, make_dataset, make_evaluation, predict, serve
from tests.playground.socket_client import HEADERS, _session_cookie
from tests.traces.page_world import make_member

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch):
    monkeypatch.setattr(EvaluationProgressConsumer, "POLL_SECONDS", 0.05)


@pytest.fixture
def world():
    serve(LLAMA, PHI)
    user, project = make_member("ada")
    version = make_dataset(project, [{"input": "a", "expected": "A"}, {"input": "b"}])
    evaluation = make_evaluation(project, version, user=user, budget_micros=10_000)
    return user, project, evaluation


async def _socket(evaluation_id, user=None, headers=HEADERS):
    extra = []
    if user is not None:
        cookie = await sync_to_async(_session_cookie)(user)
        extra = [(b"cookie", cookie)]
    return WebsocketCommunicator(
        application, f"/ws/evaluations/{evaluation_id}/", headers=[*headers, *extra]
    )


async def _refused(communicator) -> int | None:
    connected, code = await communicator.connect(timeout=5)
    assert not connected
    return code


async def test_another_sites_page_is_refused(world):
    user, _, evaluation = world
    other = [(b"origin", b"http://evil.example"), (b"host", b"testserver")]
    await _refused(await _socket(evaluation.pk, user, headers=other))
    port = [(b"origin", b"http://testserver:9999"), (b"host", b"testserver")]
    await _refused(await _socket(evaluation.pk, user, headers=port))


async def test_anonymous_is_refused(world):
    _, _, evaluation = world
    assert await _refused(await _socket(evaluation.pk)) == 4401


async def test_another_organization_is_refused_like_a_missing_one(world):
    _, _, evaluation = world
    stranger, _ = await sync_to_async(make_member)("mallory")
    assert await _refused(await _socket(evaluation.pk, stranger)) == 4404
    assert await _refused(await _socket(evaluation.pk + 1000, stranger)) == 4404


async def test_snapshots_follow_the_run_until_it_ends(world):
    user, _, evaluation = world
    ws = await _socket(evaluation.pk, user)
    connected, _ = await ws.connect(timeout=5)
    assert connected
    first = json.loads(await ws.receive_from(timeout=5))
    assert (first["done"], first["total"], first["status"], first["terminal"]) == (
        0,
        4,
        "running",
        False,
    )
    assert first["budget_micros"] == 10_000
    # Nothing changes: nothing is sent.
    assert await ws.receive_nothing(timeout=0.3)

    await sync_to_async(predict)(evaluation, 0, 0, output="A", passed=True, cost=700)
    await sync_to_async(Evaluation.objects.filter(pk=evaluation.pk).update)(spent_micros=700)
    snapshot = json.loads(await ws.receive_from(timeout=5))
    while snapshot["spent_micros"] != 700 or snapshot["done"] != 1:  # two writes, maybe two polls
        snapshot = json.loads(await ws.receive_from(timeout=5))
    assert snapshot["done"] == 1

    await sync_to_async(predict)(
        evaluation, 0, 1, output="", passed=False, status=Prediction.Status.ERROR
    )
    snapshot = json.loads(await ws.receive_from(timeout=5))
    assert snapshot["errors"] == 1

    await sync_to_async(Evaluation.objects.filter(pk=evaluation.pk).update)(
        status=Evaluation.Status.CANCELLED
    )
    last = json.loads(await ws.receive_from(timeout=5))
    assert last["terminal"] is True and last["status"] == "cancelled"
    assert last["status_label"] == "Cancelled"
    closed = await ws.receive_output(timeout=5)
    assert closed["type"] == "websocket.close"
    await ws.disconnect()


async def test_a_finished_run_sends_one_snapshot_and_closes(world):
    user, _, evaluation = world
    await sync_to_async(Evaluation.objects.filter(pk=evaluation.pk).update)(
        status=Evaluation.Status.COMPLETED
    )
    ws = await _socket(evaluation.pk, user)
    connected, _ = await ws.connect(timeout=5)
    assert connected
    snapshot = json.loads(await ws.receive_from(timeout=5))
    assert snapshot["terminal"] and snapshot["eta_seconds"] is None
    assert (await ws.receive_output(timeout=5))["type"] == "websocket.close"
