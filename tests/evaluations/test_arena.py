"""The arena's core: matches, votes into battles, the ratings task, and fair play on the board."""

from datetime import timedelta

import numpy as np
import pytest

from evaluations import arena, arena_selectors, arena_tasks
from evaluations.models import ArenaMatch, ArenaRatings, ArenaVote, Battle
from inference_app.celery import app as celery_app

pytestmark = pytest.mark.django_db

MODELS = ["org/SmolLM2-135M-Instruct", "org/Qwen2.5-0.5B-Instruct", "org/gemma-3-1b-it", "phi-4"]
ORG, TEAM, PROJECT = 7, 70, 700
OTHER_ORG, OTHER_TEAM = 8, 80
ALICE, BOB = 1, 2


@pytest.fixture
def eager_celery():
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


def new_match(voter=ALICE, models=None, n=2, team=TEAM, org=ORG, rng=None):
    return arena.match_create(
        organization_id=org,
        team_id=team,
        project_id=PROJECT,
        voter_id=voter,
        models=models,
        n=n,
        available=MODELS,
        params={"temperature": 0.7},
        rng=rng,
    )


def vote(match, kind, outcome, voter=ALICE, answers=None, prompt="Explain tides."):
    if answers is None:
        answers = [f"answer {k}" for k in range(len(match.pane_models))]
    return arena.vote_cast(
        match_id=match.id,
        voter_id=voter,
        kind=kind,
        outcome=outcome,
        answers=answers,
        prompt=prompt,
        turns=1,
    )


def battles_of(v):
    return sorted((b.model_a, b.model_b, b.winner) for b in v.battles.all())


# ---- match_create --------------------------------------------------------------------------


def test_random_n_distinct_models_shuffled_onto_panes():
    rng = np.random.default_rng(3)
    seen_orders = set()
    for _ in range(30):
        m = new_match(models=None, n=3, rng=rng)
        assert len(m.pane_models) == 3 == len(set(m.pane_models))
        assert set(m.pane_models) <= set(MODELS)
        assert len(m.id) == 32 and m.voted_at is None
        assert m.params == {"temperature": 0.7}
        seen_orders.add(tuple(m.pane_models))
    # Random picks, in random pane order: many different line-ups.
    assert len(seen_orders) > 10


def test_chosen_models_are_shuffled_onto_panes():
    chosen = MODELS[:3]
    orders = {
        tuple(new_match(models=chosen, rng=np.random.default_rng(s)).pane_models) for s in range(20)
    }
    assert all(sorted(o) == sorted(chosen) for o in orders)
    assert len(orders) > 1


def test_random_models_follow_the_widest_interval():
    ArenaRatings.objects.create(
        scope="team",
        scope_id=TEAM,
        ratings=[
            {"model": MODELS[0], "rating": 1000, "low": 990, "high": 1010, "rank": 1},
            {"model": MODELS[1], "rating": 1000, "low": 700, "high": 1300, "rank": 1},
            {"model": MODELS[2], "rating": 1000, "low": 980, "high": 1020, "rank": 1},
            {"model": MODELS[3], "rating": 1000, "low": 985, "high": 1015, "rank": 1},
        ],
        computed_at="2026-01-01T00:00:00Z",
    )
    rng = np.random.default_rng(1)
    for _ in range(10):
        assert MODELS[1] in new_match(models=None, n=2, rng=rng).pane_models


@pytest.mark.parametrize(
    "models, n, message",
    [
        (["phi-4"], 2, "2 to 6"),
        (["phi-4", "phi-4"], 2, "once"),
        (["phi-4", "unknown/model"], 2, "Not available"),
        (None, 7, "2 to 6"),
        (None, 1, "2 to 6"),
        (None, 5, "only 4"),
    ],
)
def test_match_create_refuses(models, n, message):
    with pytest.raises(arena.ArenaError, match=message):
        new_match(models=models, n=n)
    assert not ArenaMatch.objects.exists()


def test_daily_cap(settings):
    settings.ARENA_DAILY_VOTE_CAP = 2
    for _ in range(2):
        vote(new_match(models=MODELS[:2]), "pair", {"winner": 0})
    with pytest.raises(arena.ArenaError, match="2 votes in the last 24 hours") as exc:
        new_match(models=MODELS[:2])
    assert exc.value.code == "daily_cap"
    # An open match made before the cap was reached cannot be voted on past it either.
    settings.ARENA_DAILY_VOTE_CAP = 3
    m = new_match(models=MODELS[:2])
    settings.ARENA_DAILY_VOTE_CAP = 2
    with pytest.raises(arena.ArenaError) as exc:
        vote(m, "pair", {"winner": 0})
    assert exc.value.code == "daily_cap"
    # Another voter is not capped; votes older than a day no longer count.
    new_match(voter=BOB, models=MODELS[:2])
    # Started but abandoned battles count too, twice the cap of them.
    new_match(voter=BOB, models=MODELS[:2])
    new_match(voter=BOB, models=MODELS[:2])
    new_match(voter=BOB, models=MODELS[:2])
    with pytest.raises(arena.ArenaError, match="too many battles") as exc:
        new_match(voter=BOB, models=MODELS[:2])
    assert exc.value.code == "daily_cap"
    ArenaVote.objects.update(created_at=ArenaVote.objects.first().created_at - timedelta(days=2))
    vote(m, "pair", {"winner": 1})


# ---- vote_cast -----------------------------------------------------------------------------


def test_pair_votes_make_one_battle():
    cases = {
        0: "model_a",
        1: "model_b",
        "tie": "tie",
        "both_bad": "tie_bothbad",
    }
    for outcome, winner in cases.items():
        m = new_match(models=MODELS[:2])
        a, b = m.pane_models
        v = vote(m, "pair", {"winner": outcome})
        assert battles_of(v) == [(a, b, winner)]
        assert v.team_id == TEAM and v.organization_id == ORG and not v.void
        b0 = v.battles.get()
        assert (b0.team_id, b0.organization_id) == (TEAM, ORG)


def test_best_of_n_beats_each_other_pane():
    m = new_match(models=MODELS[:4])
    p = m.pane_models
    v = vote(m, "best", {"winner": 2})
    assert battles_of(v) == sorted(
        [
            (p[0], p[2], "model_b"),
            (p[1], p[2], "model_b"),
            (p[2], p[3], "model_a"),
        ]
    )


def test_ranking_gives_every_pair():
    m = new_match(models=MODELS[:3])
    p = m.pane_models
    v = vote(m, "ranking", {"order": [1, 2, 0], "junk": "x" * 1000})  # 1 best, then 2, then 0
    assert v.outcome == {"order": [1, 2, 0]}
    assert battles_of(v) == sorted(
        [
            (p[0], p[1], "model_b"),  # 1 beats 0
            (p[1], p[2], "model_a"),  # 1 beats 2
            (p[0], p[2], "model_b"),  # 2 beats 0
        ]
    )


def test_vote_records_prompt_hash_lengths_and_turns():
    import hashlib

    m = new_match(models=MODELS[:2])
    v = arena.vote_cast(
        match_id=m.id,
        voter_id=ALICE,
        kind="pair",
        outcome={"winner": 1},
        answers=["short", "a longer answer"],
        prompt="What is a tide?",
        turns=3,
    )
    assert v.prompt_hash == hashlib.sha256(b"What is a tide?").hexdigest()
    assert v.answer_lengths == [5, 15] and v.turns == 3
    assert v.outcome == {"winner": 1}
    m.refresh_from_db()
    assert m.voted_at is not None and m.turns == 3 and m.prompt_hash == v.prompt_hash


@pytest.mark.parametrize(
    "panes, kind, outcome",
    [
        (3, "pair", {"winner": 0}),
        (2, "pair", {"winner": 2}),
        (2, "pair", {"winner": True}),
        (2, "pair", {"winner": "draw"}),
        (3, "best", {"winner": 3}),
        (3, "best", {"winner": "0"}),
        (3, "ranking", {"order": [0, 1]}),
        (3, "ranking", {"order": [0, 1, 1]}),
        (3, "ranking", {"order": [0, 1, 2, 3]}),
        (2, "mystery", {"winner": 0}),
        (2, "pair", None),
    ],
)
def test_outcome_is_checked_against_the_panes(panes, kind, outcome):
    m = new_match(models=MODELS[:panes])
    with pytest.raises(arena.ArenaError):
        vote(m, kind, outcome)
    m.refresh_from_db()
    assert m.voted_at is None and not ArenaVote.objects.exists()


def test_answers_must_match_the_panes():
    m = new_match(models=MODELS[:2])
    with pytest.raises(arena.ArenaError, match="one answer per pane"):
        vote(m, "pair", {"winner": 0}, answers=["only one"])
    with pytest.raises(arena.ArenaError, match="turn"):
        arena.vote_cast(
            match_id=m.id,
            voter_id=ALICE,
            kind="pair",
            outcome={"winner": 0},
            answers=["a", "b"],
            prompt="p",
            turns=0,
        )


def test_a_second_vote_is_refused():
    m = new_match(models=MODELS[:2])
    vote(m, "pair", {"winner": 0})
    with pytest.raises(arena.ArenaError) as exc:
        vote(m, "pair", {"winner": 1})
    assert exc.value.code == "already_voted"
    assert ArenaVote.objects.count() == 1 and Battle.objects.count() == 1


def test_another_voter_cannot_vote_or_see_the_match():
    m = new_match(models=MODELS[:2])
    with pytest.raises(arena.ArenaError) as exc:
        vote(m, "pair", {"winner": 0}, voter=BOB)
    assert exc.value.code == "not_found"
    with pytest.raises(arena.ArenaError):
        arena.vote_cast(
            match_id="f" * 32,
            voter_id=ALICE,
            kind="pair",
            outcome={"winner": 0},
            answers=["a", "b"],
            prompt="p",
            turns=1,
        )
    assert arena_selectors.match_for_voter(match_id=m.id, voter_id=BOB) is None
    assert arena_selectors.match_for_voter(match_id=m.id, voter_id=ALICE) == m
    assert not ArenaVote.objects.exists()


def test_reveal_only_after_the_vote():
    m = new_match(models=MODELS[:3])
    assert arena_selectors.match_reveal(m) is None
    vote(m, "best", {"winner": 0})
    m.refresh_from_db()
    assert arena_selectors.match_reveal(m) == m.pane_models


@pytest.mark.parametrize(
    "model, answer",
    [
        ("org/SmolLM2-135M-Instruct", "Hi! I am SmolLM, a small model."),
        ("org/Qwen2.5-0.5B-Instruct", "As Qwen2.5, I think tides come from the moon."),
        ("org/gemma-3-1b-it", "I'm Gemma, trained by Google."),
        ("phi-4", "phi-4 here."),
        ("phi-4", "Speaking as PHI: tides."),
        ("unsloth/Llama-3.2-1B-Instruct-GGUF", "I am Llama 3."),
        ("unsloth/Llama-3.2-1B-Instruct-GGUF", "llama-3.2-1b-instruct-gguf says hi"),
        ("org/DeepSeek-R1-Distill-Qwen-1.5B", "I was built by DeepSeek."),
        ("org/DeepSeek-R1-Distill-Qwen-1.5B", "I am Qwen."),
    ],
)
def test_self_naming_is_caught(model, answer):
    assert arena.self_reference(model, answer)


@pytest.mark.parametrize(
    "model, answer",
    [
        ("phi-4", "Philosophy and physics explain tides."),
        ("org/gemma-3-1b-it", "Tides follow the moon."),
        ("org/Qwen2.5-0.5B-Instruct", "I am Llama."),  # another model's name is not its own
        ("unsloth/Llama-3.2-1B-Instruct-GGUF", "Llamas live in the Andes."),
    ],
)
def test_other_words_are_not_self_naming(model, answer):
    assert arena.self_reference(model, answer) == ""


def test_a_void_vote_is_stored_without_battles():
    m = new_match(models=MODELS[:2])
    names = {"org/SmolLM2-135M-Instruct": "I am SmolLM2.", "org/Qwen2.5-0.5B-Instruct": "Hello."}
    answers = [names[model] for model in m.pane_models]
    v = vote(m, "pair", {"winner": 0}, answers=answers)
    assert v.void and "SmolLM" in v.void_reason.replace("smollm", "SmolLM")
    label = "A" if m.pane_models[0].startswith("org/Smol") else "B"
    assert f"Model {label}" in v.void_reason
    assert not Battle.objects.exists()
    m.refresh_from_db()
    # Voted all the same: no second try, and the reveal shows who was who.
    assert arena_selectors.match_reveal(m) == m.pane_models
    with pytest.raises(arena.ArenaError):
        vote(m, "pair", {"winner": 1})


def test_the_vote_queues_a_refresh_after_commit(django_capture_on_commit_callbacks, eager_celery):
    m = new_match(models=MODELS[:2])
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        vote(m, "pair", {"winner": 0})
    assert len(callbacks) == 1
    # The eager task ran: the team's and the organization's ratings exist.
    team = ArenaRatings.objects.get(scope="team", scope_id=TEAM)
    org = ArenaRatings.objects.get(scope="organization", scope_id=ORG)
    assert team.battles == org.battles == 1
    # A void vote queues nothing.
    m2 = new_match(models=MODELS[:2])
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        vote(
            m2, "pair", {"winner": 0}, answers=["I am SmolLM2 and Qwen.", "I am SmolLM2 and Qwen."]
        )
    assert callbacks == []


# ---- the ratings task and the board --------------------------------------------------------


def cast_many(voter, wins, team=TEAM, org=ORG):
    """wins: list of (winner model, loser model); one pair vote each."""
    for winner, loser in wins:
        m = new_match(voter=voter, models=[winner, loser], team=team, org=org)
        vote(m, "pair", {"winner": m.pane_models.index(winner)}, voter=voter)


def test_refresh_task_stores_ratings_for_team_and_organization(settings):
    settings.ARENA_PROVISIONAL_BATTLES = 5
    strong, weak, rare = MODELS[0], MODELS[1], MODELS[2]
    cast_many(ALICE, [(strong, weak)] * 5 + [(weak, strong)] * 2 + [(strong, rare)])
    cast_many(BOB, [(strong, weak)] * 3)
    # Another team of another organization: must not move this team's ratings.
    cast_many(BOB, [(weak, strong)] * 40, team=OTHER_TEAM, org=OTHER_ORG)

    result = arena_tasks.arena_ratings_refresh(TEAM, ORG, rounds=200)
    assert result == {"team": True, "organization": True}
    stored = ArenaRatings.objects.get(scope="team", scope_id=TEAM)
    assert stored.battles == 11 and stored.rounds == 200
    board = arena_selectors.arena_board(team_id=TEAM)
    by_model = {row["model"]: row for row in board}
    assert set(by_model) == {strong, weak, rare}
    assert by_model[strong]["rating"] > by_model[weak]["rating"]
    assert by_model[strong]["battles"] == 11 and by_model[weak]["battles"] == 10
    assert by_model[rare]["battles"] == 1 and by_model[rare]["provisional"]
    assert not by_model[strong]["provisional"]
    assert by_model[strong]["win_rate"] == pytest.approx(9 / 11, abs=1e-3)
    for row in board:
        assert row["low"] <= row["rating"] <= row["high"]
        assert row["rank"] >= 1 and not row["pending"]
    assert board[0]["model"] == strong
    matrix = arena_selectors.arena_matrix(TEAM)
    i, j = matrix["models"].index(strong), matrix["models"].index(weak)
    assert matrix["win_rate"][i][j] == pytest.approx(8 / 10)

    # Nothing new: the next refresh does nothing; the organization counts its own teams only.
    assert arena_tasks.arena_ratings_refresh(TEAM, ORG, rounds=200) == {
        "team": False,
        "organization": False,
    }
    assert ArenaRatings.objects.get(scope="organization", scope_id=ORG).battles == 11
    assert not ArenaRatings.objects.filter(scope_id__in=[OTHER_TEAM, OTHER_ORG]).exists()
    org_board = arena_selectors.organization_board(ORG)
    assert [r["model"] for r in org_board] == [r["model"] for r in board]

    # A new vote, or more rounds asked for, refits.
    cast_many(ALICE, [(weak, rare)])
    assert arena_tasks.arena_ratings_refresh(TEAM, ORG, rounds=200) == {
        "team": True,
        "organization": True,
    }
    assert ArenaRatings.objects.get(scope="team", scope_id=TEAM).battles == 12
    assert arena_tasks.arena_ratings_refresh(TEAM, ORG, rounds=400)["team"] is True
    assert arena_tasks.arena_ratings_refresh(TEAM, ORG, rounds=300)["team"] is False
    assert ArenaRatings.objects.get(scope="team", scope_id=TEAM).rounds == 400

    # A refresh that read earlier but finishes later does not overwrite a newer fit.
    newer = ArenaRatings.objects.get(scope="team", scope_id=TEAM)
    ArenaRatings.objects.filter(pk=newer.pk).update(
        computed_at=newer.computed_at + timedelta(hours=1), battles=0
    )
    assert arena_tasks.ratings_refresh("team", TEAM, rounds=400) is False
    ArenaRatings.objects.filter(pk=newer.pk).update(computed_at=newer.computed_at, battles=12)

    # The other team's refresh sees only its own 40 battles, with the opposite verdict.
    arena_tasks.arena_ratings_refresh(OTHER_TEAM, OTHER_ORG, rounds=200)
    other = {r["model"]: r for r in arena_selectors.arena_board(team_id=OTHER_TEAM)}
    assert other[weak]["rating"] > other[strong]["rating"]
    assert ArenaRatings.objects.get(scope="team", scope_id=TEAM).battles == 12


def test_board_is_none_before_ratings():
    assert arena_selectors.arena_board(team_id=TEAM) is None
    assert arena_selectors.arena_matrix(TEAM) is None
    assert arena_selectors.organization_board(ORG) is None


def test_a_pending_vote_hides_the_numbers_from_that_voter_only():
    cast_many(ALICE, [(MODELS[0], MODELS[1])] * 4 + [(MODELS[2], MODELS[0])] * 2)
    arena_tasks.arena_ratings_refresh(TEAM, ORG, rounds=100)
    open_match = new_match(voter=BOB, models=MODELS[:2])

    hidden = arena_selectors.arena_board(team_id=TEAM, voter_id=BOB)
    assert {r["model"] for r in hidden} == set(MODELS[:3])
    assert [r["model"] for r in hidden] == sorted(r["model"] for r in hidden)
    for row in hidden:
        assert row["pending"] and row["note"] == "vote pending"
        assert row["rating"] is row["low"] is row["high"] is row["rank"] is row["win_rate"] is None
    assert arena_selectors.arena_matrix(TEAM, voter_id=BOB) is None

    # Alice has no open match: she sees everything.
    shown = arena_selectors.arena_board(team_id=TEAM, voter_id=ALICE)
    assert all(r["rating"] is not None and not r["pending"] for r in shown)
    assert arena_selectors.arena_matrix(TEAM, voter_id=ALICE) is not None

    # Once Bob votes, his board opens.
    vote(open_match, "pair", {"winner": 0}, voter=BOB)
    assert all(not r["pending"] for r in arena_selectors.arena_board(team_id=TEAM, voter_id=BOB))

    # An open match older than a day no longer holds the board back.
    stale = new_match(voter=BOB, models=MODELS[:2])
    assert arena_selectors.arena_board(team_id=TEAM, voter_id=BOB)[0]["pending"]
    ArenaMatch.objects.filter(id=stale.id).update(created_at=stale.created_at - timedelta(days=2))
    assert not arena_selectors.arena_board(team_id=TEAM, voter_id=BOB)[0]["pending"]


def test_refresh_with_only_void_votes_stores_an_empty_board():
    m = new_match(models=MODELS[:2])
    vote(m, "pair", {"winner": 0}, answers=["I am SmolLM2 and Qwen.", "I am SmolLM2 and Qwen."])
    arena_tasks.arena_ratings_refresh(TEAM, ORG, rounds=50)
    # No battles at all: nothing to store yet, the board stays empty.
    assert arena_selectors.arena_board(team_id=TEAM) in (None, [])


def test_two_votes_at_once_make_one(transactional_db, eager_celery):
    import threading

    from django.db import connection

    m = new_match(models=MODELS[:2])
    barrier = threading.Barrier(2)
    results = []

    def cast(winner):
        try:
            barrier.wait(5)
            vote(m, "pair", {"winner": winner})
            results.append("voted")
        except arena.ArenaError as exc:
            results.append(exc.code)
        finally:
            connection.close()

    threads = [threading.Thread(target=cast, args=(w,)) for w in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == ["already_voted", "voted"]
    assert ArenaVote.objects.count() == 1 and Battle.objects.count() == 1


def test_the_worker_knows_the_refresh_task():
    """A worker imports each app's `tasks` module only: the refresh must be registered there,
    or every vote's refresh is an "unregistered task" and the board never moves."""
    import os
    import subprocess
    import sys

    script = (
        "import django; django.setup()\n"
        "from inference_app.celery import app\n"
        "app.loader.import_default_modules()\n"
        "print('evaluations.arena_tasks.arena_ratings_refresh' in app.tasks)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "inference_app.settings"},
    )
    assert out.stdout.strip().endswith("True"), (
        "evaluations/tasks.py should import evaluations.arena_tasks.arena_ratings_refresh",
        out.stderr[-2000:],
    )
