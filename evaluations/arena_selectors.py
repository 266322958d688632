"""The blind arena's reads: a voter's match, the reveal, and the stored boards (ratings are
computed by evaluations/arena_tasks.py, never here).

Fair play: while a voter has an open match (created in the last day, not voted on), that voter's
board and matrix hold back every rating, interval, rank and win rate ("vote pending"), so they
cannot read the standings their pending vote would change. All models, not only the match's:
hiding just those rows would tell the voter which models are behind the anonymous panes (and
each vote moves every rating a little, the fit being joint).

Settings: ARENA_PROVISIONAL_BATTLES (a model with fewer battles is marked provisional, default
20).
"""

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from evaluations.models import ArenaMatch, ArenaRatings

DEFAULT_PROVISIONAL_BATTLES = 20
PENDING_NOTE = "vote pending"
_HIDDEN = ("rating", "low", "high", "rank", "win_rate")


def provisional_battles() -> int:
    return int(getattr(settings, "ARENA_PROVISIONAL_BATTLES", DEFAULT_PROVISIONAL_BATTLES))


def match_for_voter(*, match_id: str, voter_id: int) -> ArenaMatch | None:
    """The match, if it is this voter's (another voter's match is None, like a missing one)."""
    return ArenaMatch.objects.filter(id=match_id, voter_id=voter_id).first()


def match_reveal(match: ArenaMatch) -> list[str] | None:
    """The models in pane order once the match is voted on; None before."""
    return list(match.pane_models) if match.voted_at is not None else None


def vote_pending(voter_id: int | None) -> bool:
    """Whether this voter has an open match created in the last day."""
    if voter_id is None:
        return False
    since = timezone.now() - timedelta(days=1)
    return ArenaMatch.objects.filter(
        voter_id=voter_id, voted_at__isnull=True, created_at__gte=since
    ).exists()


def _stored(scope: str, scope_id: int) -> ArenaRatings | None:
    return ArenaRatings.objects.filter(scope=scope, scope_id=scope_id).first()


def _board(stored: ArenaRatings | None, voter_id: int | None) -> list[dict] | None:
    """Rows best first: {model, rating, low, high, rank, battles, win_rate, provisional,
    pending, note}; when the voter's vote is pending the numbers are None and the rows are in
    name order (the order would give the ranking away)."""
    if stored is None:
        return None
    threshold = provisional_battles()
    rows = []
    for row in stored.ratings:
        row = {**row, "provisional": row["battles"] < threshold, "pending": False, "note": ""}
        rows.append(row)
    if vote_pending(voter_id):
        for row in rows:
            row.update(dict.fromkeys(_HIDDEN), pending=True, note=PENDING_NOTE)
        return sorted(rows, key=lambda r: r["model"])
    return sorted(rows, key=lambda r: (r["rank"], -r["rating"], r["model"]))


def _matrix(stored: ArenaRatings | None, voter_id: int | None) -> dict | None:
    if stored is None or not stored.matrix or vote_pending(voter_id):
        return None
    return stored.matrix


def arena_board(*, team_id: int, voter_id: int | None = None) -> list[dict] | None:
    """The team's arena leaderboard (None before the first ratings)."""
    return _board(_stored(ArenaRatings.Scope.TEAM, team_id), voter_id)


def organization_board(organization_id: int, voter_id: int | None = None) -> list[dict] | None:
    """The organization's arena leaderboard (all its teams' battles)."""
    return _board(_stored(ArenaRatings.Scope.ORGANIZATION, organization_id), voter_id)


def arena_matrix(team_id: int, voter_id: int | None = None) -> dict | None:
    """{"models": [...], "win_rate": rows} for the team: row model's share of wins against the
    column model, ties half, None where they never met. None before the first ratings or while
    `voter_id` has a vote pending."""
    return _matrix(_stored(ArenaRatings.Scope.TEAM, team_id), voter_id)


def organization_matrix(organization_id: int, voter_id: int | None = None) -> dict | None:
    return _matrix(_stored(ArenaRatings.Scope.ORGANIZATION, organization_id), voter_id)


def ratings_info(*, team_id: int) -> dict | None:
    """{battles, rounds, computed_at} of the team's stored fit, for a "computed at" line."""
    stored = _stored(ArenaRatings.Scope.TEAM, team_id)
    if stored is None:
        return None
    return {"battles": stored.battles, "rounds": stored.rounds, "computed_at": stored.computed_at}
