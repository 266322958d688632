"""A blind battle's calls are traced under its match: Traces hides them until the vote (they
name the models), and the vote's void check reads the answers the server recorded, not the
page's copy."""

import json

import pytest
from asgiref.sync import sync_to_async

from evaluations.models import ArenaMatch, Battle
from inference_app.gateway import settlement
from tests.evaluations import test_arena_pages as pages
from tests.evaluations.test_arena_pages import FAST, FAST_2, _blind_run, _events_until, _match
from tests.playground.conftest import make_member
from tests.playground.socket_client import connect
from traces.models import Call, CallBody

# The arena pages' fake engine and served models.
fake_engine = pages.fake_engine
served = pages.served


async def _battle(user, project) -> ArenaMatch:
    match = await sync_to_async(_match)(user, project, [FAST_2, FAST])
    ws = await connect(user)
    await ws.send_json_to(_blind_run(match.pk, 0, "Who are you?"))
    await ws.send_json_to(_blind_run(match.pk, 1, "Who are you?"))
    await _events_until(ws, {"p1", "p2"})
    await ws.disconnect()
    await settlement.drain()
    return match


@pytest.mark.django_db(transaction=True)
async def test_blind_calls_are_hidden_from_traces_until_the_vote(served):
    user, project = await sync_to_async(make_member)("ada")
    match = await _battle(user, project)
    calls = await sync_to_async(list)(Call.objects.filter(session_id=match.pk).order_by("pane"))
    assert [(c.pane, c.trace_id, c.model) for c in calls] == [
        ("arena-0", match.pk, FAST_2),
        ("arena-1", match.pk, FAST),
    ]
    client = await sync_to_async(pages._client)(user)
    listing = await sync_to_async(client.get)("/traces/")
    assert listing.status_code == 200
    assert calls[0].span_id not in listing.content.decode()
    page = await sync_to_async(client.get)(f"/traces/{calls[0].span_id}")
    assert page.status_code == 404

    vote = {"kind": "pair", "outcome": {"winner": 0}, "answers": ["a", "b"], "prompt": "Who?"}
    response = await sync_to_async(client.post)(
        f"/arena/matches/{match.pk}/vote", json.dumps(vote), content_type="application/json"
    )
    assert response.status_code == 200
    listing = await sync_to_async(client.get)("/traces/")
    assert calls[0].span_id in listing.content.decode()
    page = await sync_to_async(client.get)(f"/traces/{calls[0].span_id}")
    assert page.status_code == 200


@pytest.mark.django_db(transaction=True)
async def test_the_void_check_reads_the_recorded_answers_not_the_pages(served):
    user, project = await sync_to_async(make_member)("ada")
    match = await _battle(user, project)
    # As if pane A's model had answered with its own name.
    first = await Call.objects.aget(session_id=match.pk, pane="arena-0")
    await CallBody.objects.filter(span_id=first.span_id).aupdate(
        output={"content": "I am Phi, a small model.", "finish_reason": "stop"}
    )
    client = await sync_to_async(pages._client)(user)
    # The page sends innocent copies: the server's record wins.
    vote = {"kind": "pair", "outcome": {"winner": 0}, "answers": ["Hi.", "Hi."], "prompt": "?"}
    response = await sync_to_async(client.post)(
        f"/arena/matches/{match.pk}/vote", json.dumps(vote), content_type="application/json"
    )
    assert response.status_code == 200
    assert response.json()["void"] is True
    assert await Battle.objects.acount() == 0
