"""The arena's pages: the team's (or organization's) leaderboard, a blind battle's set-up, the
battle itself (Compare with anonymous panes) and its vote.

Who sees what: every page needs a signed-in user with a current project; the team is that
project's team. A match and its vote belong to their voter alone: anyone else gets a 404 (as if
it did not exist). The organization-wide board is open to every member of the organization (the
ratings pool all its teams' votes and name no voter).

The battle page never holds a model id before the vote: the set-up form lists the models, the
battle page only "Model A", "Model B", ... (its socket messages name the match and a pane
index; see evaluations/arena_runs.py). The models appear in the vote's answer.
"""

from __future__ import annotations

import json
import string
from datetime import timedelta

from django.contrib.auth.decorators import login_required
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from evaluations.models import ArenaMatch
from inference_app.models import CatalogModel
from playground.chat_requests import MAX_PANES
from playground.selectors import current_project, served_models

try:  # the arena's core (another helper's modules): the pages say so until it is there
    from evaluations import arena, arena_selectors
except ImportError:  # pragma: no cover
    arena = arena_selectors = None

MIN_PANES = 2
DEFAULT_PARAMS = {"temperature": 0.7, "max_tokens": 512}
MAX_TOKENS_LIMIT = 4096
# Where "New battle" finds the last set-up (chosen models or random N, and the parameters).
SESSION_KEY = "arena_setup"


def pane_label(index: int) -> str:
    return f"Model {string.ascii_uppercase[index]}"


def _project_or_none(request):
    return current_project(user=request.user)


def _json_error(message: str, status: int, param: str | None = None) -> JsonResponse:
    body = {"message": message, "type": "invalid_request_error", "param": param, "code": None}
    return JsonResponse({"error": body}, status=status)


def _display_names(model_ids) -> dict[str, str]:
    rows = CatalogModel.objects.filter(model_id__in=list(model_ids))
    return dict(rows.values_list("model_id", "display_name"))


# ---- the leaderboard ---------------------------------------------------------------------------


def _hue(win_rate) -> int | None:
    # 0 (red) for a pair always lost, 120 (green) for one always won.
    return None if win_rate is None else round(120 * max(0.0, min(1.0, float(win_rate))))


def _matrix_rows(matrix, names: dict[str, str]) -> tuple[list[str], list[dict]]:
    """Header names and rows of colored cells for the win-rate matrix."""
    if not matrix or not matrix.get("models"):
        return [], []
    models = matrix["models"]
    rows = []
    for model, rates in zip(models, matrix.get("win_rate") or [], strict=False):
        cells = []
        for other, rate in zip(models, rates, strict=False):
            if other == model or rate is None:
                cells.append({"self": other == model, "rate": None, "hue": None})
            else:
                cells.append({"self": False, "rate": round(100 * rate), "hue": _hue(rate)})
        rows.append({"model": model, "name": names.get(model, model), "cells": cells})
    return [names.get(m, m) for m in models], rows


def _board_and_matrix(*, scope: str, project, user_id: int):
    """Rows and matrix of the team's (or the organization's) stored fit; the voter's pending
    match holds every number back (arena_selectors says why)."""
    if scope == "organization":
        org_id = project.team.organization_id
        return (
            arena_selectors.organization_board(org_id, voter_id=user_id),
            arena_selectors.organization_matrix(org_id, voter_id=user_id),
        )
    return (
        arena_selectors.arena_board(team_id=project.team_id, voter_id=user_id),
        arena_selectors.arena_matrix(project.team_id, voter_id=user_id),
    )


def _open_match(voter_id: int) -> str | None:
    """The voter's latest battle still waiting for a vote (it holds the board's numbers back)."""
    since = timezone.now() - timedelta(days=1)
    return (
        ArenaMatch.objects.filter(voter_id=voter_id, voted_at__isnull=True, created_at__gte=since)
        .order_by("-created_at")
        .values_list("id", flat=True)
        .first()
    )


@login_required
def arena_board_page(request):
    project = _project_or_none(request)
    scope = "organization" if request.GET.get("scope") == "organization" else "team"
    context = {
        "project": project,
        "scope": scope,
        "ready": arena_selectors is not None,
        "board": None,
        "matrix_models": [],
        "matrix_rows": [],
        "max_panes": MAX_PANES,
        "served_count": len(served_models()),
    }
    if project is not None and arena_selectors is not None:
        board, matrix = _board_and_matrix(scope=scope, project=project, user_id=request.user.pk)
        names = _display_names(
            [row["model"] for row in board or [] if row.get("model")]
            + list((matrix or {}).get("models") or [])
        )
        context["board"] = [
            {**row, "name": names.get(row.get("model"), row.get("model"))} for row in board or []
        ]
        context["matrix_models"], context["matrix_rows"] = _matrix_rows(matrix, names)
        context["team"] = project.team.name
        context["pending"] = any(row.get("pending") for row in context["board"])
        context["open_match"] = _open_match(request.user.pk)
    return render(request, "evaluations/arena.html", context)


# ---- starting a battle -----------------------------------------------------------------------


@login_required
def battle_new(request):
    """The set-up: chosen models (prefilled from ?models=, Compare's panes) or random N."""
    project = _project_or_none(request)
    wanted = {m for m in request.GET.get("models", "").split(",") if m}
    setup = request.session.get(SESSION_KEY) or {}
    models = served_models()
    return render(
        request,
        "evaluations/arena_new.html",
        {
            "project": project,
            "models": models,
            "wanted": wanted,
            "mode": "chosen" if wanted else "random",
            "n": setup.get("n") or MIN_PANES,
            "pane_counts": range(MIN_PANES, max(MIN_PANES, min(MAX_PANES, len(models))) + 1),
            "params": {**DEFAULT_PARAMS, **(setup.get("params") or {})},
            "ready": arena is not None,
        },
    )


def _number(raw, cast, default, low, high):
    try:
        value = cast(raw)
    except (TypeError, ValueError, OverflowError):
        return default
    if value != value:  # NaN
        return default
    return max(low, min(high, value))


def _setup_from(request) -> dict:
    """{"models": [...] | None, "n", "params"} from a JSON body or the set-up form."""
    if request.content_type == "application/json":
        try:
            data = json.loads(request.body or b"{}")
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise ValueError("Send a JSON object.")
        models = data.get("models")
        raw_params = data.get("params") if isinstance(data.get("params"), dict) else {}
        n = data.get("n")
    else:
        if request.POST.get("again"):
            setup = request.session.get(SESSION_KEY)
            if not setup:
                raise ValueError("Start a battle from the set-up first.")
            return setup
        models = request.POST.getlist("models") if request.POST.get("mode") == "chosen" else None
        raw_params = {k: request.POST.get(k) for k in DEFAULT_PARAMS}
        n = request.POST.get("n")
    if models is not None:
        if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
            raise ValueError("models is a list of model ids.")
        models = list(dict.fromkeys(models))
        if not MIN_PANES <= len(models) <= MAX_PANES:
            raise ValueError(f"Choose {MIN_PANES} to {MAX_PANES} models.")
    n = len(models) if models else int(_number(n, int, MIN_PANES, MIN_PANES, MAX_PANES))
    params = {
        "temperature": _number(
            raw_params.get("temperature"), float, DEFAULT_PARAMS["temperature"], 0.0, 2.0
        ),
        "max_tokens": int(
            _number(
                raw_params.get("max_tokens"), int, DEFAULT_PARAMS["max_tokens"], 1, MAX_TOKENS_LIMIT
            )
        ),
    }
    return {"models": models, "n": n, "params": params}


@login_required
@require_POST
def match_start(request):
    """POST /arena/matches: a new blind match. JSON in, JSON out ({match_id, panes, url}: no
    model); the set-up form gets a redirect to the battle page."""
    wants_json = request.content_type == "application/json"
    project = _project_or_none(request)

    def refuse(message, status=400):
        if wants_json:
            return _json_error(message, status)
        return render(
            request,
            "evaluations/arena_new.html",
            {
                "project": project,
                "models": served_models(),
                "wanted": set(request.POST.getlist("models")),
                "mode": request.POST.get("mode") or "random",
                "n": request.POST.get("n") or MIN_PANES,
                "pane_counts": range(MIN_PANES, MAX_PANES + 1),
                "params": DEFAULT_PARAMS,
                "ready": arena is not None,
                "error": message,
            },
            status=status,
        )

    if project is None:
        return refuse("You are not in a project yet: ask an admin to add you to a team.", 403)
    if arena is None:
        return refuse("The arena is not available yet.", 503)
    try:
        setup = _setup_from(request)
    except ValueError as exc:
        return refuse(str(exc))
    try:
        match = arena.match_create(
            organization_id=project.team.organization_id,
            team_id=project.team_id,
            project_id=project.pk,
            voter_id=request.user.pk,
            models=setup["models"],
            n=setup["n"],
            available=[m.model_id for m in served_models()],
            params=setup["params"],
        )
    except arena.ArenaError as exc:
        return refuse(str(exc))
    request.session[SESSION_KEY] = setup
    url = reverse("arena_battle", args=[match.id])
    if wants_json:
        return JsonResponse(
            {"match_id": match.id, "panes": len(match.pane_models), "url": url}, status=201
        )
    return redirect(url)


# ---- the battle and its vote -----------------------------------------------------------------


def _voters_match(request, match_id: str) -> ArenaMatch:
    if arena_selectors is None:
        raise Http404("No such battle.")
    match = arena_selectors.match_for_voter(match_id=match_id, voter_id=request.user.pk)
    if match is None:
        raise Http404("No such battle.")
    return match


def _revealed(match) -> list[dict] | None:
    models = arena_selectors.match_reveal(match)
    if models is None:
        return None
    names = _display_names(models)
    return [
        {"label": pane_label(i), "letter": pane_label(i)[-1], "model": m, "name": names.get(m, m)}
        for i, m in enumerate(models)
    ]


@login_required
def battle_page(request, match_id: str):
    match = _voters_match(request, match_id)
    vote = getattr(match, "vote", None) if match.voted_at else None
    reveal = _revealed(match)
    return render(
        request,
        "evaluations/arena_battle.html",
        {
            "match_id": match.id,
            "panes": reveal
            or [
                {"label": pane_label(i), "letter": pane_label(i)[-1]}
                for i in range(len(match.pane_models))
            ],
            "params": match.params or {},
            "reveal": reveal,
            "void": bool(vote and vote.void),
            "void_reason": vote.void_reason if vote else "",
        },
    )


@login_required
@require_POST
def vote_page(request, match_id: str):
    """POST /arena/matches/<id>/vote {kind, outcome, answers, prompt} -> the reveal."""
    match = _voters_match(request, match_id)
    try:
        data = json.loads(request.body or b"{}")
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return _json_error("Send a JSON object.", 400)
    answers, prompt = data.get("answers"), data.get("prompt")
    if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
        return _json_error("answers is a list of texts, one per pane.", 400, "answers")
    if not isinstance(prompt, str):
        return _json_error("A vote carries the prompt.", 400, "prompt")
    # Turns are counted by the socket as prompts go out (evaluations/arena_runs.py), not taken
    # from the page: a battle no prompt went to cannot be voted on.
    turns = match.turns
    if turns < 1:
        return _json_error("Vote after the models have answered a prompt.", 400)
    # The void check reads the answers the server recorded (the match's traced calls); the
    # page's copy only fills a pane the server kept no text for (bodies off): a page cannot
    # hide an answer that named its model.
    recorded = arena_selectors.match_answers(match)
    if len(answers) == len(recorded):
        answers = [
            mine if mine is not None else sent for mine, sent in zip(recorded, answers, strict=True)
        ]
    try:
        vote = arena.vote_cast(
            match_id=match.id,
            voter_id=request.user.pk,
            kind=data.get("kind"),
            outcome=data.get("outcome"),
            answers=answers,
            prompt=prompt,
            turns=turns,
        )
    except arena.ArenaError as exc:
        return _json_error(str(exc), 404 if exc.code == "not_found" else 400)
    match.refresh_from_db()
    return JsonResponse(
        {"void": vote.void, "void_reason": vote.void_reason, "panes": _revealed(match) or []}
    )
