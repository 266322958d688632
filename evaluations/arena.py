"""The blind arena's writes: a match (which model is behind which anonymous pane) and its vote,
which becomes pairwise battles for the Bradley-Terry ratings (evaluations/ratings.py), refreshed
by a Celery task after the vote commits (evaluations/arena_tasks.py), never in the request.

Settings: ARENA_DAILY_VOTE_CAP (votes per voter in any 24 hours, default 200).
"""

import hashlib
import re
import secrets
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from evaluations import ratings
from evaluations.models import ArenaMatch, ArenaRatings, ArenaVote, Battle

MIN_PANES, MAX_PANES = 2, 6
DEFAULT_DAILY_VOTE_CAP = 200

# Families recognised inside a model id; an answer that names its own family is not blind.
FAMILIES = (
    "llama",
    "smollm",
    "phi",
    "deepseek",
    "qwen",
    "mistral",
    "mixtral",
    "gemma",
    "gpt",
    "claude",
    "falcon",
    "olmo",
    "granite",
    "starcoder",
    "vicuna",
    "zephyr",
    "hermes",
)


class ArenaError(Exception):
    """A refused arena action; the message is for the user. `code` lets a caller tell them
    apart: invalid, not_found, already_voted, daily_cap."""

    def __init__(self, message: str, code: str = "invalid"):
        super().__init__(message)
        self.code = code


def daily_vote_cap() -> int:
    return int(getattr(settings, "ARENA_DAILY_VOTE_CAP", DEFAULT_DAILY_VOTE_CAP))


def _check_cap(voter_id: int) -> None:
    since = timezone.now() - timedelta(days=1)
    cap = daily_vote_cap()
    if ArenaVote.objects.filter(voter_id=voter_id, created_at__gte=since).count() >= cap:
        raise ArenaError(
            f"You have cast {cap} votes in the last 24 hours, the most allowed: "
            "come back tomorrow.",
            code="daily_cap",
        )


def pair_battle_counts(**scope) -> dict[tuple[str, str], int]:
    """{(model, model): battles} keyed by the sorted pair, for a scope (team_id=... or
    organization_id=...)."""
    counts: dict[tuple[str, str], int] = {}
    rows = Battle.objects.filter(**scope).values("model_a", "model_b").annotate(n=Count("id"))
    for row in rows:
        key = tuple(sorted((row["model_a"], row["model_b"])))
        counts[key] = counts.get(key, 0) + row["n"]
    return counts


def _team_intervals(team_id: int) -> dict[str, tuple[float, float, float]]:
    stored = ArenaRatings.objects.filter(scope=ArenaRatings.Scope.TEAM, scope_id=team_id).first()
    if stored is None:
        return {}
    return {r["model"]: (r["low"], r["rating"], r["high"]) for r in stored.ratings}


def match_create(
    *,
    organization_id: int,
    team_id: int,
    project_id: int,
    voter_id: int,
    models: list[str] | None,
    n: int,
    available: list[str],
    params: dict,
    rng=None,
) -> ArenaMatch:
    """A new blind match of 2..6 distinct models shuffled onto panes. `models=None` means
    "random n from `available`", chosen to shrink the team's widest rating intervals first
    (ratings.pair_to_show_next; at random while the team has no ratings). `rng`: a numpy
    Generator (tests pass a seeded one)."""
    rng = rng if rng is not None else np.random.default_rng()
    _check_cap(voter_id)
    # Matches cost inference whether voted on or not: abandoned ones count too, with room for
    # the battles a voter gives up on.
    since = timezone.now() - timedelta(days=1)
    if ArenaMatch.objects.filter(voter_id=voter_id, created_at__gte=since).count() >= (
        2 * daily_vote_cap()
    ):
        raise ArenaError(
            "You have started too many battles in the last 24 hours: come back tomorrow.",
            code="daily_cap",
        )
    available = list(dict.fromkeys(available))
    if models is None:
        if isinstance(n, bool) or not isinstance(n, int) or not MIN_PANES <= n <= MAX_PANES:
            raise ArenaError(f"A battle has {MIN_PANES} to {MAX_PANES} models.")
        if len(available) < n:
            raise ArenaError(f"{n} models asked, but only {len(available)} are available.")
        picked = ratings.pair_to_show_next(
            _team_intervals(team_id), pair_battle_counts(team_id=team_id), available, n, rng
        )
    else:
        picked = list(models)
        if len(set(picked)) != len(picked):
            raise ArenaError("Pick each model once.")
        if not MIN_PANES <= len(picked) <= MAX_PANES:
            raise ArenaError(f"A battle has {MIN_PANES} to {MAX_PANES} models.")
        missing = [m for m in picked if m not in available]
        if missing:
            raise ArenaError(f"Not available: {', '.join(missing)}.")
    panes = [picked[k] for k in rng.permutation(len(picked))]
    return ArenaMatch.objects.create(
        id=secrets.token_hex(16),
        organization_id=organization_id,
        team_id=team_id,
        project_id=project_id,
        voter_id=voter_id,
        pane_models=panes,
        params=dict(params or {}),
    )


def _names_of(model: str) -> list[str]:
    """What would give `model` away in its own answer: its id, the id's last path segment, the
    segment's leading name (e.g. "SmolLM2-135M" -> "smollm") and known family names in it."""
    model = model.lower()
    segment = model.rsplit("/", 1)[-1]
    names = {model, segment}
    lead = re.match(r"[a-z]+", segment)
    if lead and len(lead.group()) >= 3:
        names.add(lead.group())
    names.update(f for f in FAMILIES if f in model)
    return sorted(names, key=len, reverse=True)


def self_reference(model: str, answer: str) -> str:
    """The name of `model` (or its family) that `answer` mentions, or "". Whole words only, so
    "Phi" counts but "philosophy" does not; a version may follow ("Qwen2.5", "Llama-3")."""
    text = answer.lower()
    for name in _names_of(model):
        if re.search(rf"(?<![a-z0-9]){re.escape(name)}(?![a-z])", text):
            return name
    return ""


def _index(value, panes: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < panes:
        raise ArenaError("That pane is not in this battle.")
    return value


def _battles(kind: str, outcome, panes: list[str]) -> list[tuple[str, str, str]]:
    """The vote's pairwise outcomes (model_a, model_b, winner), model_a the lower pane."""
    if not isinstance(outcome, dict):
        raise ArenaError("The vote's outcome is missing.")
    n = len(panes)

    def beats(winner: int, loser: int) -> tuple[str, str, str]:
        i, j = sorted((winner, loser))
        return (panes[i], panes[j], "model_a" if winner == i else "model_b")

    if kind == ArenaVote.Kind.PAIR:
        if n != 2:
            raise ArenaError("A / B / tie / both bad is for two panes.")
        winner = outcome.get("winner")
        if winner == "tie":
            return [(panes[0], panes[1], "tie")]
        if winner == "both_bad":
            return [(panes[0], panes[1], "tie_bothbad")]
        w = _index(winner, n)
        return [beats(w, 1 - w)]
    if kind == ArenaVote.Kind.BEST:
        w = _index(outcome.get("winner"), n)
        return [beats(w, j) for j in range(n) if j != w]
    if kind == ArenaVote.Kind.RANKING:
        order = outcome.get("order")
        if not isinstance(order, list) or sorted(_index(k, n) for k in order) != list(range(n)):
            raise ArenaError("A ranking orders every pane once, best first.")
        return [beats(order[a], order[b]) for a in range(n) for b in range(a + 1, n)]
    raise ArenaError("Unknown kind of vote.")


def vote_cast(
    *,
    match_id: str,
    voter_id: int,
    kind: str,
    outcome: dict,
    answers: list[str],
    prompt: str,
    turns: int,
) -> ArenaVote:
    """The voter's one vote on their match. kind "pair" (two panes; outcome {"winner": 0 | 1 |
    "tie" | "both_bad"}), "best" ({"winner": pane}) or "ranking" ({"order": panes, best
    first}). `answers` are the panes' texts (the last turn's, or all turns'), in pane order.

    The vote is void (stored, no battles) when an answer names its own model or family. After
    the commit the ratings refresh task is queued for the match's team and organization."""
    match = ArenaMatch.objects.filter(id=match_id, voter_id=voter_id).first()
    if match is None:
        # Another voter's match looks like no match at all.
        raise ArenaError("No such battle.", code="not_found")
    panes = list(match.pane_models)
    if match.voted_at is not None:
        raise ArenaError("This battle has already been voted on.", code="already_voted")
    pairs = _battles(kind, outcome, panes)
    # Store only what the kind reads (not whatever else the request carried).
    outcome = (
        {"order": list(outcome["order"])} if kind == "ranking" else {"winner": outcome["winner"]}
    )
    if not isinstance(answers, list) or len(answers) != len(panes):
        raise ArenaError("A vote carries one answer per pane.")
    if not all(isinstance(a, str) for a in answers):
        raise ArenaError("Answers are texts.")
    if isinstance(turns, bool) or not isinstance(turns, int) or not 1 <= turns <= 1000:
        raise ArenaError("A vote comes after 1 to 1000 turns.")
    if not isinstance(prompt, str):
        raise ArenaError("The prompt is a text.")
    _check_cap(voter_id)

    reasons = []
    for index, (model, answer) in enumerate(zip(panes, answers, strict=True)):
        name = self_reference(model, answer)
        if name:
            reasons.append(f"Model {chr(ord('A') + index)} named itself ({name})")
    void_reason = "; ".join(reasons)[:200]
    prompt_hash = hashlib.sha256(prompt.encode()).hexdigest()

    with transaction.atomic():
        now = timezone.now()
        # The conditional update is the lock: of two votes at once, one changes the row.
        claimed = ArenaMatch.objects.filter(id=match.id, voted_at__isnull=True).update(
            voted_at=now, turns=turns, prompt_hash=prompt_hash
        )
        if not claimed:
            raise ArenaError("This battle has already been voted on.", code="already_voted")
        vote = ArenaVote.objects.create(
            match=match,
            organization_id=match.organization_id,
            team_id=match.team_id,
            voter_id=voter_id,
            kind=kind,
            outcome=outcome,
            prompt_hash=prompt_hash,
            turns=turns,
            answer_lengths=[len(a) for a in answers],
            void=bool(reasons),
            void_reason=void_reason,
        )
        if not reasons:
            Battle.objects.bulk_create(
                Battle(
                    vote=vote,
                    organization_id=match.organization_id,
                    team_id=match.team_id,
                    model_a=a,
                    model_b=b,
                    winner=winner,
                )
                for a, b, winner in pairs
            )
            transaction.on_commit(lambda: _enqueue_refresh(match.team_id, match.organization_id))
    return vote


def _enqueue_refresh(team_id: int, organization_id: int) -> None:
    from evaluations.arena_tasks import arena_ratings_refresh

    arena_ratings_refresh.delay(team_id, organization_id)
