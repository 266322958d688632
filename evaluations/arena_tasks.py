"""Celery task: refit the arena's Bradley-Terry ratings for a team and its organization.

Queued by evaluations.arena.vote_cast after a vote commits. Settings: ARENA_BOOTSTRAP_ROUNDS
(default 1000; an interactive refresh may pass fewer).
"""

from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.db.models import Count, Max
from django.utils import timezone

from evaluations import ratings
from evaluations.arena_selectors import provisional_battles
from evaluations.models import ArenaRatings, Battle

DEFAULT_BOOTSTRAP_ROUNDS = 1000


def bootstrap_rounds() -> int:
    return int(getattr(settings, "ARENA_BOOTSTRAP_ROUNDS", DEFAULT_BOOTSTRAP_ROUNDS))


def ratings_compute(battles, *, rounds: int, seed=None) -> tuple[list[dict], dict]:
    """(rows, matrix) for ArenaRatings: rows best first, {model, rating, low, high, rank,
    battles, win_rate, provisional}; the rating is the fit on all battles, low/high the bootstrap's 95%."""
    if not battles:
        return [], {}
    fit = ratings.fit_bradley_terry(battles)
    intervals = ratings.bootstrap_intervals(battles, rounds=rounds, seed=seed)
    ranks = ratings.ranks_by_interval({m: (iv[0], iv[2]) for m, iv in intervals.items()})
    played = dict.fromkeys(fit, 0)
    score = dict.fromkeys(fit, 0.0)
    for a, b, winner in battles:
        played[a] += 1
        played[b] += 1
        if winner == "model_a":
            score[a] += 1
        elif winner == "model_b":
            score[b] += 1
        else:
            score[a] += 0.5
            score[b] += 0.5
    rows = [
        {
            "model": m,
            "rating": round(fit[m], 1),
            "low": round(intervals[m][0], 1),
            "high": round(intervals[m][2], 1),
            "rank": ranks[m],
            "battles": played[m],
            "win_rate": round(score[m] / played[m], 4),
            "provisional": played[m] < provisional_battles(),
        }
        for m in fit
    ]
    rows.sort(key=lambda r: (r["rank"], -r["rating"], r["model"]))
    return rows, ratings.win_rate_matrix(battles)


def ratings_refresh(scope: str, scope_id: int, *, rounds: int) -> bool:
    """Refit one scope and store it; False (nothing done) when the stored fit already counts
    every battle with at least as many rounds (many votes queue many refreshes)."""
    field = "team_id" if scope == ArenaRatings.Scope.TEAM else "organization_id"
    battles_qs = Battle.objects.filter(**{field: scope_id})
    # Taken before reading: a battle committed during the fit is newer and refits again.
    started = timezone.now()
    seen = battles_qs.aggregate(latest=Max("created_at"), n=Count("id"))
    stored = ArenaRatings.objects.filter(scope=scope, scope_id=scope_id).first()
    # The count as well as the time: a vote's battles get their created_at before the vote
    # commits, so a refresh that started in between has a later computed_at without them.
    if (
        stored is not None
        and stored.battles == seen["n"]
        and (seen["latest"] is None or stored.computed_at >= seen["latest"])
        and stored.rounds >= rounds
    ):
        return False
    battles = list(battles_qs.values_list("model_a", "model_b", "winner"))
    rows, matrix = ratings_compute(battles, rounds=rounds)
    with transaction.atomic():
        # Two refreshes can finish out of order: the one that read later wins.
        current = (
            ArenaRatings.objects.select_for_update().filter(scope=scope, scope_id=scope_id).first()
        )
        if current is not None and current.computed_at > started:
            return False
        ArenaRatings.objects.update_or_create(
            scope=scope,
            scope_id=scope_id,
            defaults={
                "ratings": rows,
                "matrix": matrix,
                "battles": len(battles),
                "rounds": rounds,
                "computed_at": started,
            },
        )
    return True


@shared_task
def arena_ratings_refresh(team_id: int, organization_id: int, rounds: int | None = None) -> dict:
    rounds = rounds or bootstrap_rounds()
    return {
        "team": ratings_refresh(ArenaRatings.Scope.TEAM, team_id, rounds=rounds),
        "organization": ratings_refresh(
            ArenaRatings.Scope.ORGANIZATION, organization_id, rounds=rounds
        ),
    }
