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


def open_battle_sessions(*, project_id: int) -> frozenset[str]:
    """Blind battles of this project not voted on yet: their calls (traced under the match's
    id) would name the models behind the panes, so Traces hides them until the vote."""
    return frozenset(
        ArenaMatch.objects.filter(project_id=project_id, voted_at__isnull=True).values_list(
            "id", flat=True
        )
    )


def match_answers(match: ArenaMatch) -> list[str | None]:
    """Each pane's answers as the server recorded them (the calls traced under the match, all
    turns joined), in pane order; None for a pane with no stored answer (bodies off, or not
    written yet). The vote's void check reads these rather than what the page sends."""
    from traces.models import Call, CallBody

    calls = Call.objects.filter(project_id=match.project_id, session_id=match.id, has_body=True)
    keys = {(c.started_at, c.span_id): c.pane for c in calls}
    answers: dict[str, list[str]] = {}
    bodies = CallBody.objects.filter(
        project_id=match.project_id, span_id__in=[span for _, span in keys]
    ).order_by("started_at")
    for body in bodies:
        pane = keys.get((body.started_at, body.span_id))
        content = body.output.get("content") if isinstance(body.output, dict) else None
        if pane is not None and isinstance(content, str):
            answers.setdefault(pane, []).append(content)
    return [
        "\n\n".join(answers[f"arena-{index}"]) if f"arena-{index}" in answers else None
        for index in range(len(match.pane_models))
    ]
