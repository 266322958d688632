"""The arena's pages and its blind runs on the Playground socket: a match's page, its socket
events and its creation never name a model before the vote; another user's match is a 404 on
every path; the board shows the stored ratings, and none of them while the voter's vote is
pending. The engine is bench's fake one (the only thing not the product)."""

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from django.test import Client
from django.utils import timezone

from evaluations.arena_runs import BlindPane
from evaluations.models import ArenaMatch, ArenaRatings, ArenaVote, Battle
from inference_app.catalog import sync_catalog
from inference_app.gateway import settlement
from inference_app.models import CatalogModel, Deployment
from tests.playground.conftest import make_member
from tests.playground.socket_client import connect

FAST = "meta-llama/Llama-3.1-8B-Instruct"
FAST_2 = "microsoft/Phi-4-mini-instruct"
NOT_SERVED = "meta-llama/Llama-4-Scout-17B-16E-Instruct"
# What would give a pane's model away: ids and catalog names.
GIVEAWAYS = (FAST, FAST_2, "Llama 3.1 8B", "Phi 4 Mini", "Llama-3.1", "Phi-4")


@pytest.fixture(scope="module")
def fake_engine(tmp_path_factory):
    from tests.support.engines import start_fake_engine

    engine = start_fake_engine(
        var_dir=tmp_path_factory.mktemp("arena-engine"), tokens=8, tokens_per_second=400
    )
    yield engine
    engine.stop()


@pytest.fixture
def served(fake_engine, transactional_db):
    sync_catalog()  # a transactional test's flush also empties the seeded catalog
    for name, model_id in (("fake-fast", FAST), ("fake-fast-2", FAST_2)):
        Deployment.objects.create(
            name=name,
            model=CatalogModel.objects.get(model_id=model_id),
            base_url=fake_engine.base_url,
            upstream_model="fast-model",
        )


@pytest.fixture(autouse=True)
async def settlements_drained():
    yield
    await settlement.drain()


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _start(client, **body):
    return client.post("/arena/matches", json.dumps(body), content_type="application/json")


def _seen(match_id: str, turns: int = 1) -> None:
    """What the socket records as the battle's prompts go out (the pages' tests skip the runs)."""
    ArenaMatch.objects.filter(pk=match_id).update(turns=turns)


def _no_giveaway(text: str) -> None:
    for name in GIVEAWAYS:
        assert name.lower() not in text.lower(), f"{name!r} reached the browser"


@pytest.mark.django_db(transaction=True)
def test_a_new_match_and_its_page_name_no_model(served):
    user, project = make_member("ada")
    client = _client(user)
    response = _start(client, models=[FAST, FAST_2], params={"temperature": 0.2})
    assert response.status_code == 201
    _no_giveaway(response.content.decode())
    data = response.json()
    assert data["panes"] == 2
    match = ArenaMatch.objects.get(pk=data["match_id"])
    assert sorted(match.pane_models) == sorted([FAST, FAST_2])
    assert match.team_id == project.team_id and match.voter_id == user.pk
    assert match.params == {"temperature": 0.2, "max_tokens": 512}

    page = client.get(data["url"])
    assert page.status_code == 200
    html = page.content.decode()
    _no_giveaway(html)
    assert "Model A" in html and "Model B" in html
    assert 'id="vote-pair"' in html


@pytest.mark.django_db(transaction=True)
def test_the_set_up_form_starts_a_random_battle_and_new_battle_repeats_it(served):
    user, _ = make_member("ada")
    client = _client(user)
    response = client.post("/arena/matches", {"mode": "random", "n": "2", "max_tokens": "64"})
    assert response.status_code == 302
    first = ArenaMatch.objects.get()
    assert response["Location"] == f"/arena/battle/{first.pk}"
    assert first.params["max_tokens"] == 64
    # "New battle" after the vote: the same set-up from the session.
    again = client.post("/arena/matches", {"again": "1"})
    assert again.status_code == 302
    assert ArenaMatch.objects.count() == 2
    second = ArenaMatch.objects.exclude(pk=first.pk).get()
    assert second.params == first.params
    # Too few models to choose from is the form again, with the reason.
    refused = client.post("/arena/matches", {"mode": "chosen", "models": [FAST]})
    assert refused.status_code == 400
    assert "Choose 2 to 6 models" in refused.content.decode()


@pytest.mark.django_db(transaction=True)
def test_another_users_match_is_a_404_and_the_voter_sees_the_reveal(served):
    ada, _ = make_member("ada")
    bob, _ = make_member("bob")
    ada_client, bob_client = _client(ada), _client(bob)
    match_id = _start(ada_client, models=[FAST, FAST_2]).json()["match_id"]
    vote = {"kind": "pair", "outcome": {"winner": 0}, "answers": ["one", "two"]}
    vote.update(prompt="Hi", turns=1)

    # No prompt went to this battle yet: no vote on it.
    unseen = ada_client.post(
        f"/arena/matches/{match_id}/vote", json.dumps(vote), content_type="application/json"
    )
    assert unseen.status_code == 400 and "answered" in unseen.json()["error"]["message"]
    _seen(match_id)

    assert bob_client.get(f"/arena/battle/{match_id}").status_code == 404
    forged = bob_client.post(
        f"/arena/matches/{match_id}/vote", json.dumps(vote), content_type="application/json"
    )
    assert forged.status_code == 404
    assert ArenaVote.objects.count() == 0

    response = ada_client.post(
        f"/arena/matches/{match_id}/vote", json.dumps(vote), content_type="application/json"
    )
    assert response.status_code == 200, response.content
    data = response.json()
    match = ArenaMatch.objects.get(pk=match_id)
    assert data["void"] is False
    assert [p["model"] for p in data["panes"]] == match.pane_models
    assert [p["label"] for p in data["panes"]] == ["Model A", "Model B"]
    battle = Battle.objects.get()
    assert (battle.model_a, battle.winner) == (match.pane_models[0], "model_a")
    # The page now names them; a second vote is refused.
    html = ada_client.get(f"/arena/battle/{match_id}").content.decode()
    assert "Llama 3.1 8B" in html and "Phi 4 Mini" in html
    assert "Thanks — your vote counts." in html
    twice = ada_client.post(
        f"/arena/matches/{match_id}/vote", json.dumps(vote), content_type="application/json"
    )
    assert twice.status_code == 400


@pytest.mark.django_db(transaction=True)
def test_an_answer_naming_its_model_makes_the_vote_void(served):
    ada, _ = make_member("ada")
    client = _client(ada)
    match_id = _start(client, models=[FAST, FAST_2]).json()["match_id"]
    _seen(match_id)
    match = ArenaMatch.objects.get(pk=match_id)
    answers = ["I am Llama, made by Meta." if m == FAST else "Hello." for m in match.pane_models]
    response = client.post(
        f"/arena/matches/{match_id}/vote",
        json.dumps(
            {"kind": "pair", "outcome": {"winner": "tie"}, "answers": answers}
            | {"prompt": "Who are you?", "turns": 1}
        ),
        content_type="application/json",
    )
    assert response.status_code == 200
    assert response.json()["void"] is True
    assert "named itself" in response.json()["void_reason"]
    assert Battle.objects.count() == 0
    html = client.get(f"/arena/battle/{match_id}").content.decode()
    assert "Thanks — void:" in html


def _ratings(team_id: int) -> None:
    ArenaRatings.objects.create(
        scope=ArenaRatings.Scope.TEAM,
        scope_id=team_id,
        ratings=[
            {"model": FAST, "rating": 1043.6, "low": 1010.2, "high": 1080.9, "rank": 1}
            | {"battles": 31, "win_rate": 0.61},
            {"model": FAST_2, "rating": 956.4, "low": 919.1, "high": 990.0, "rank": 2}
            | {"battles": 7, "win_rate": 0.39},
        ],
        matrix={"models": [FAST, FAST_2], "win_rate": [[None, 0.61], [0.39, None]]},
        battles=38,
        rounds=1000,
        computed_at=timezone.now(),
    )


@pytest.mark.django_db(transaction=True)
def test_the_board_shows_the_stored_ratings_and_hides_them_while_a_vote_is_pending(served):
    ada, project = make_member("ada")
    _ratings(project.team_id)
    client = _client(ada)
    html = client.get("/arena/").content.decode()
    assert "1044" in html and "1010 – 1081" in html  # rating and its interval
    assert "61%" in html and "39%" in html  # win rates, in the board and the matrix
    assert 'id="arena-matrix"' in html and "hsl(" in html
    assert html.count("provisional</span>") == 1  # 7 battles, under the threshold of 20

    # An open battle: no rating, interval, rank or win rate until the vote.
    match_id = _start(client, models=[FAST, FAST_2]).json()["match_id"]
    html = client.get("/arena/").content.decode()
    assert "vote pending" in html and 'id="arena-pending"' in html
    assert f'href="/arena/battle/{match_id}"' in html  # back to the open battle
    for number in ("1044", "1010", "61%", "39%"):
        assert number not in html
    assert 'id="arena-matrix"' not in html
    vote = {"kind": "pair", "outcome": {"winner": 1}, "answers": ["a", "b"], "prompt": "x"}
    _seen(match_id, turns=2)
    client.post(
        f"/arena/matches/{match_id}/vote",
        json.dumps(vote | {"turns": 2}),
        content_type="application/json",
    )
    assert "1044" in client.get("/arena/").content.decode()


@pytest.mark.django_db(transaction=True)
def test_pages_need_a_sign_in():
    client = Client()
    for url in ("/arena/", "/arena/new", "/arena/battle/abc"):
        assert client.get(url).status_code == 302
    assert client.post("/arena/matches").status_code == 302


# ---- the socket --------------------------------------------------------------------------------


def _blind_run(match_id: str, pane: int, text: str = "Hello") -> dict:
    return {
        "type": "run",
        "pane": f"p{pane + 1}",
        "run": f"r{pane + 1}",
        "arena": {"match": match_id, "pane": pane},
        "messages": [{"role": "user", "content": text}],
        "params": {"max_tokens": 100},
        "kind": "compare",
    }


async def _events_until(ws, panes: set[str], timeout: float = 20) -> tuple[list[dict], str]:
    events, texts, ended = [], [], set()
    async with asyncio.timeout(timeout):
        while not panes <= ended:
            text = await ws.receive_from(timeout=timeout)
            texts.append(text)
            event = json.loads(text)
            events.append(event)
            if event["type"] in ("done", "error"):
                ended.add(event["pane"])
    return events, "\n".join(texts)


def _match(user, project, models) -> ArenaMatch:
    return ArenaMatch.objects.create(
        id=f"m{len(models)}{user.pk}".ljust(32, "0"),
        organization_id=project.team.organization_id,
        team_id=project.team_id,
        project_id=project.pk,
        voter_id=user.pk,
        pane_models=models,
        params={"temperature": 0.5, "max_tokens": 30},
    )


@pytest.mark.django_db(transaction=True)
async def test_blind_run_events_carry_no_model_and_no_cost(served):
    user, project = await sync_to_async(make_member)("ada")
    match = await sync_to_async(_match)(user, project, [FAST_2, FAST])
    ws = await connect(user)
    await ws.send_json_to(_blind_run(match.pk, 0))
    await ws.send_json_to(_blind_run(match.pk, 1))
    events, raw = await _events_until(ws, {"p1", "p2"})
    await ws.disconnect()

    assert [e for e in events if e["type"] == "error"] == []
    assert {e["pane"] for e in events if e["type"] == "done"} == {"p1", "p2"}
    assert any(e["type"] == "delta" for e in events)
    _no_giveaway(raw)
    assert "cost_micros" not in raw
    assert all(e["type"] != "session" for e in events)  # no history naming the models
    await match.arefresh_from_db()
    assert match.turns == 1  # one prompt, counted once (pane A's run)
    # The runs went to the match's models, with the match's parameters, as Compare calls.
    await settlement.drain()
    from billing.models import UsageRecord

    rows = await sync_to_async(list)(UsageRecord.objects.values_list("model", "source"))
    assert sorted(rows) == sorted([(FAST, "compare"), (FAST_2, "compare")])


@pytest.mark.django_db(transaction=True)
async def test_the_socket_refuses_a_blind_run_of_someone_elses_match(served):
    ada, project = await sync_to_async(make_member)("ada")
    bob, _ = await sync_to_async(make_member)("bob")
    match = await sync_to_async(_match)(ada, project, [FAST, FAST_2])
    ws = await connect(bob)
    await ws.send_json_to(_blind_run(match.pk, 0))
    events, raw = await _events_until(ws, {"p1"})
    assert [e["type"] for e in events] == ["error"]
    assert events[0]["status"] == 404
    _no_giveaway(raw)
    # A made-up match, a pane past the last and a voted match are refused too.
    await ws.send_json_to(_blind_run("f" * 32, 0))
    assert (await _events_until(ws, {"p1"}))[0][0]["status"] == 404
    await ws.disconnect()

    ws = await connect(ada)
    await ws.send_json_to(_blind_run(match.pk, 2))
    assert (await _events_until(ws, {"p3"}))[0][0]["status"] == 400
    match.voted_at = timezone.now()
    await match.asave(update_fields=["voted_at"])
    await ws.send_json_to(_blind_run(match.pk, 0))
    events, _ = await _events_until(ws, {"p1"})
    assert events[0]["status"] == 400 and "voted" in events[0]["message"]
    await ws.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_blind_panes_error_does_not_name_its_model(served):
    user, project = await sync_to_async(make_member)("ada")
    match = await sync_to_async(_match)(user, project, [NOT_SERVED, FAST])
    ws = await connect(user)
    await ws.send_json_to(_blind_run(match.pk, 0))
    events, raw = await _events_until(ws, {"p1"})
    await ws.disconnect()
    error = events[-1]
    assert error["type"] == "error" and error["status"] == 404
    assert error["message"] == "This model is not available right now: start a new battle."
    assert NOT_SERVED not in raw and "Llama-4" not in raw


def test_a_blind_panes_events_lose_cost_and_names():
    pane = BlindPane(match_id="m", index=0, model=FAST, params={}, names=(FAST, "Llama 3.1 8B"))
    done = pane.scrub({"type": "done", "completion_tokens": 3, "cost_micros": 41})
    assert done == {"type": "done", "completion_tokens": 3}
    error = pane.scrub(
        {
            "type": "error",
            "code": "context_length_exceeded",
            "message": f"{FAST} (Llama 3.1 8B) is full",
        }
    )
    assert error["message"] == "this model (this model) is full"
