"""The Leaderboards pages: a team's leaderboards (and a form for a new one), and one
leaderboard's table, chart and arena ratings.

Access: members of the team (who are still in its organization) and admins of the team's
organization, the rule of inference_app.projects. Another team's leaderboard is a 404.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from billing.models import Membership
from evaluations import leaderboards
from evaluations.models import Evaluation
from inference_app.models import Team
from inference_app.projects import project_for_user

try:  # the arena (helpers J/K) may not be there yet
    from evaluations.arena_selectors import arena_board
except ImportError:  # pragma: no cover - until the arena lands
    arena_board = None

MAX_FORM_COLUMNS = 8


def teams_readable(user_id: int):
    """Teams whose leaderboards the user may read and create: their teams (while still in the
    team's organization) and every team of an organization they administer."""
    administered = Membership.objects.filter(user_id=user_id, role=Membership.Role.ADMIN).values(
        "organization_id"
    )
    return (
        Team.objects.filter(
            Q(teammembership__user_id=user_id, organization__memberships__user_id=user_id)
            | Q(organization_id__in=administered)
        )
        .distinct()
        .order_by("name")
    )


def _scorers_by_evaluation(team_ids) -> dict[str, dict[str, list[str]]]:
    """For the form: per team id, per evaluation name, its scorer names."""
    result: dict[str, dict[str, list[str]]] = {}
    rows = Evaluation.objects.filter(team_id__in=team_ids).values_list("team_id", "name", "scorers")
    for team_id, name, scorers in rows:
        names = result.setdefault(str(team_id), {}).setdefault(name, [])
        for scorer in scorers or []:
            if isinstance(scorer, dict) and scorer.get("name") and scorer["name"] not in names:
                names.append(scorer["name"])
    return result


def _columns_from_form(post) -> list[dict]:
    columns = []
    for index in range(MAX_FORM_COLUMNS):
        evaluation = (post.get(f"evaluation_{index}") or "").strip()
        if not evaluation:
            continue
        metric = post.get(f"metric_{index}") or "mean"
        columns.append(
            {
                "evaluation": evaluation,
                "scorer": (post.get(f"scorer_{index}") or "").strip(),
                "metric": metric,
                "minimize": post.get(f"minimize_{index}") == "on",
            }
        )
    return columns


@login_required
@require_http_methods(["GET", "POST"])
def leaderboards_list(request):
    teams = list(teams_readable(request.user.pk))
    team_ids = [team.pk for team in teams]
    errors: dict[str, list[str]] = {}
    form = {"team": "", "name": "", "description": "", "columns": [], "show_arena": True}
    if request.method == "POST":
        team = next((t for t in teams if str(t.pk) == request.POST.get("team")), None)
        form = {
            "team": request.POST.get("team", ""),
            "name": request.POST.get("name", ""),
            "description": request.POST.get("description", ""),
            "columns": _columns_from_form(request.POST),
            "show_arena": request.POST.get("show_arena") == "on",
        }
        if team is None:
            errors = {"team": ["choose one of your teams"]}
        else:
            try:
                board = leaderboards.leaderboard_create(
                    organization_id=team.organization_id,
                    team_id=team.pk,
                    team=team.name,
                    user_id=request.user.pk,
                    name=form["name"],
                    description=form["description"],
                    columns=form["columns"],
                    show_arena=form["show_arena"],
                )
            except leaderboards.LeaderboardInvalid as exc:
                errors = exc.errors
            else:
                return redirect("leaderboards:detail", leaderboard_id=board.pk)
    if not form["team"]:
        current = project_for_user(user_id=request.user.pk, path=None)
        form["team"] = str(current.team_id) if current else (str(teams[0].pk) if teams else "")
    context = {
        "teams": teams,
        "boards": leaderboards.leaderboards_of_teams(team_ids),
        "scorers_by_evaluation": _scorers_by_evaluation(team_ids),
        "metrics": leaderboards.METRICS,
        "form": form,
        "errors": errors,
        "max_columns": MAX_FORM_COLUMNS,
    }
    return render(request, "evaluations/leaderboards.html", context, status=400 if errors else 200)


def _format_cell(cell: dict | None, metric: str) -> dict | None:
    """Display strings: scores and rates to two decimals, cost in dollars, latency in ms."""
    if cell is None or cell["value"] is None:
        return None

    def show(value):
        if value is None:
            return None
        if metric == "cost_per_item":
            return f"${value / 1_000_000:.6f}".rstrip("0").rstrip(".") if value else "$0"
        if metric == "latency_p50":
            return f"{value:.0f} ms"
        return f"{value:.2f}"

    text = show(cell["value"])
    if cell["low"] is not None and cell["high"] is not None:
        text = f"{text} [{show(cell['low'])}, {show(cell['high'])}]"
    return {**cell, "text": text}


def _readable_board(request, leaderboard_id: int):
    team_ids = list(teams_readable(request.user.pk).values_list("pk", flat=True))
    board = leaderboards.leaderboard_get(leaderboard_id=leaderboard_id, team_ids=team_ids)
    if board is None:
        raise Http404("No such leaderboard")
    return board


@login_required
@require_http_methods(["GET", "POST"])
def leaderboard_edit(request, leaderboard_id: int):
    """Rename, describe, change the columns or the arena section (the team stays)."""
    board = _readable_board(request, leaderboard_id)
    errors: dict[str, list[str]] = {}
    form = {
        "team": str(board.team_id),
        "name": board.name,
        "description": board.description,
        "columns": board.columns,
        "show_arena": board.show_arena,
    }
    if request.method == "POST":
        form.update(
            name=request.POST.get("name", ""),
            description=request.POST.get("description", ""),
            columns=_columns_from_form(request.POST),
            show_arena=request.POST.get("show_arena") == "on",
        )
        try:
            leaderboards.leaderboard_update(
                board,
                name=form["name"],
                description=form["description"],
                columns=form["columns"],
                show_arena=form["show_arena"],
            )
        except leaderboards.LeaderboardInvalid as exc:
            errors = exc.errors
            board.refresh_from_db()
        else:
            return redirect("leaderboards:detail", leaderboard_id=board.pk)
    context = {
        "board": board,
        "fixed_team": Team.objects.get(pk=board.team_id),
        "scorers_by_evaluation": _scorers_by_evaluation([board.team_id]),
        "metrics": leaderboards.METRICS,
        "form": form,
        "errors": errors,
        "max_columns": MAX_FORM_COLUMNS,
    }
    return render(
        request, "evaluations/leaderboards_edit.html", context, status=400 if errors else 200
    )


@require_GET
@login_required
def leaderboard_detail(request, leaderboard_id: int):
    board = _readable_board(request, leaderboard_id)
    table = leaderboards.leaderboard_table(board)
    rows = []
    for row in table["rows"]:
        cells = []
        for column, cell in zip(table["columns"], row["cells"], strict=True):
            shown = _format_cell(cell, column["metric"])
            cells.append(
                {
                    "cell": shown,
                    "best": column["best"] == row["model"],
                    "sort": "" if shown is None else shown["value"],
                }
            )
        rows.append({"model": row["model"], "cells": cells})
    arena = None
    if board.show_arena and arena_board is not None:
        # voter_id: a voter with a vote pending sees no standings (the arena's fair-play rule).
        arena = arena_board(team_id=board.team_id, voter_id=request.user.pk)
    chart_columns = table["columns"][:1]
    context = {
        "board": board,
        "table": table,
        "rows": rows,
        "arena": arena,
        "arena_available": arena_board is not None,
        "chart": {
            "points": table["chart"],
            "quality_label": chart_columns[0]["title"] if chart_columns else "",
            "minimize": chart_columns[0]["minimize"] if chart_columns else False,
            # Scores and pass rates are 0..1: the chart's axis shows the whole range.
            "quality_is_score": bool(chart_columns)
            and chart_columns[0]["metric"] in ("mean", "pass_rate"),
        },
    }
    return render(request, "evaluations/leaderboards_detail.html", context)
