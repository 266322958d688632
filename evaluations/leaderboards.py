"""Leaderboards: per team, rows are models and columns (as in Weave) an evaluation by name, a
scorer, a metric and whether lower is better. A column reads the evaluation's LATEST completed
run (or a budget-stopped one with results), so a leaderboard updates when its evaluations run
again without being edited.

Services (`leaderboard_create`, `leaderboard_update`) validate columns against the team's
evaluations; the selector `leaderboard_table` computes every cell from the predictions, with a
95% bootstrap interval over dataset items (trials folded first, as evaluations.stats asks).

Like the rest of the app's core, this module knows teams and organizations by id only.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction

from evaluations import selectors, stats
from evaluations.models import Evaluation, Leaderboard, Prediction

METRICS = {
    "mean": "Mean score",
    "pass_rate": "Pass rate",
    "cost_per_item": "Cost per item",
    "latency_p50": "p50 latency",
}
# Metrics that need no scorer: they describe the calls, not the answers.
CALL_METRICS = {"cost_per_item", "latency_p50"}
# Lower is better for these unless the column says otherwise.
MINIMIZED_BY_DEFAULT = CALL_METRICS
MAX_COLUMNS = 20


class LeaderboardInvalid(Exception):
    """Every problem with a leaderboard's fields, as {"field": [messages]}."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(m for messages in errors.values() for m in messages))
        self.errors = errors


# --- Which run a column reads ----------------------------------------------------------------

_READABLE = [Evaluation.Status.COMPLETED, Evaluation.Status.BUDGET_EXCEEDED]


def latest_run(*, team_id: int, name: str) -> Evaluation | None:
    """The newest run of the evaluation `name` in the team that has results: completed, or
    stopped by its budget after some predictions were done."""
    runs = Evaluation.objects.filter(team_id=team_id, name=name, status__in=_READABLE).order_by(
        "-created_at", "-pk"
    )
    for run in runs[:20]:
        if run.status == Evaluation.Status.COMPLETED:
            return run
        if run.predictions.filter(status=Prediction.Status.DONE).exists():
            return run
    return None


def evaluation_names(*, team_id: int) -> list[str]:
    """Names of the team's evaluations, for the create form."""
    return sorted(
        set(Evaluation.objects.filter(team_id=team_id).values_list("name", flat=True).distinct())
    )


# --- Services ----------------------------------------------------------------------------------


def _clean_columns(columns: Any, *, team_id: int) -> tuple[list[dict], list[str]]:
    if not isinstance(columns, list) or not columns:
        return [], ["add at least one column"]
    if len(columns) > MAX_COLUMNS:
        return [], [f"at most {MAX_COLUMNS} columns"]
    cleaned: list[dict] = []
    errors: list[str] = []
    seen = set()
    for number, column in enumerate(columns, start=1):
        where = f"column {number}"
        if not isinstance(column, dict):
            errors.append(f"{where}: must be an object with evaluation, scorer and metric")
            continue
        unknown = set(column) - {"evaluation", "scorer", "metric", "minimize"}
        if unknown:
            errors.append(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        name = column.get("evaluation")
        metric = column.get("metric", "mean")
        scorer = column.get("scorer") or ""
        minimize = column.get("minimize")
        if not isinstance(name, str) or not name.strip():
            errors.append(f"{where}: evaluation must be an evaluation's name")
            continue
        name = name.strip()
        if metric not in METRICS:
            errors.append(f"{where}: metric must be one of {', '.join(METRICS)}")
            continue
        if not isinstance(scorer, str):
            errors.append(f"{where}: scorer must be a scorer's name")
            continue
        if minimize is None:
            minimize = metric in MINIMIZED_BY_DEFAULT
        elif not isinstance(minimize, bool):
            errors.append(f"{where}: minimize must be true or false")
            continue
        runs = Evaluation.objects.filter(team_id=team_id, name=name)
        if not runs.exists():
            errors.append(f"{where}: no evaluation named {name!r} in this team")
            continue
        if metric in CALL_METRICS:
            scorer = ""
        else:
            names = set()
            for scorers in runs.values_list("scorers", flat=True):
                names.update(s.get("name") for s in scorers or [] if isinstance(s, dict))
            if scorer not in names:
                known = ", ".join(sorted(n for n in names if n)) or "none"
                errors.append(
                    f"{where}: evaluation {name!r} has no scorer {scorer!r} (scorers: {known})"
                )
                continue
        key = (name, scorer, metric)
        if key in seen:
            errors.append(f"{where}: the same column twice")
            continue
        seen.add(key)
        cleaned.append(
            {"evaluation": name, "scorer": scorer, "metric": metric, "minimize": minimize}
        )
    return cleaned, errors


def _clean(
    *, team_id: int, name: Any, description: Any, columns: Any, leaderboard_id: int | None = None
) -> dict:
    errors: dict[str, list[str]] = {}
    if not isinstance(name, str) or not name.strip():
        errors["name"] = ["a leaderboard needs a name"]
    elif len(name.strip()) > 100:
        errors["name"] = ["a name has at most 100 characters"]
    elif (
        Leaderboard.objects.filter(team_id=team_id, name=name.strip())
        .exclude(pk=leaderboard_id)
        .exists()
    ):
        errors["name"] = [f"the team already has a leaderboard named {name.strip()!r}"]
    if description is None:
        description = ""
    if not isinstance(description, str):
        errors["description"] = ["description must be text"]
    cleaned_columns, column_errors = _clean_columns(columns, team_id=team_id)
    if column_errors:
        errors["columns"] = column_errors
    if errors:
        raise LeaderboardInvalid(errors)
    return {
        "name": name.strip(),
        "description": description.strip(),
        "columns": cleaned_columns,
    }


def leaderboard_create(
    *,
    organization_id: int,
    team_id: int,
    team: str,
    user_id: int,
    name: Any,
    description: Any = "",
    columns: Any,
    show_arena: bool = True,
) -> Leaderboard:
    """A new leaderboard, or LeaderboardInvalid with every problem (nothing is written)."""
    fields = _clean(team_id=team_id, name=name, description=description, columns=columns)
    try:
        with transaction.atomic():
            return Leaderboard.objects.create(
                organization_id=organization_id,
                team_id=team_id,
                team=team,
                created_by_id=user_id,
                show_arena=bool(show_arena),
                **fields,
            )
    except IntegrityError:  # the same name created meanwhile
        raise LeaderboardInvalid(
            {"name": [f"the team already has a leaderboard named {fields['name']!r}"]}
        ) from None


def leaderboard_update(
    leaderboard: Leaderboard,
    *,
    name: Any = None,
    description: Any = None,
    columns: Any = None,
    show_arena: bool | None = None,
) -> Leaderboard:
    """Change what is given (None keeps a field), validated like a new one."""
    fields = _clean(
        team_id=leaderboard.team_id,
        name=leaderboard.name if name is None else name,
        description=leaderboard.description if description is None else description,
        columns=leaderboard.columns if columns is None else columns,
        leaderboard_id=leaderboard.pk,
    )
    for key, value in fields.items():
        setattr(leaderboard, key, value)
    if show_arena is not None:
        leaderboard.show_arena = bool(show_arena)
    try:
        with transaction.atomic():
            leaderboard.save()
    except IntegrityError:
        raise LeaderboardInvalid(
            {"name": [f"the team already has a leaderboard named {fields['name']!r}"]}
        ) from None
    return leaderboard


# --- Metrics of one run ------------------------------------------------------------------------


@dataclass
class Cell:
    value: float | None
    low: float | None = None
    high: float | None = None
    n: int = 0

    def as_dict(self) -> dict:
        return {"value": self.value, "low": self.low, "high": self.high, "n": self.n}


def _model_labels(evaluation: Evaluation) -> dict[int, str]:
    """A row label per model index: the model id; a model listed twice (other parameters)
    gets "#2" after it, so its rows stay apart."""
    labels: dict[int, str] = {}
    counts: dict[str, int] = defaultdict(int)
    for index, spec in enumerate(evaluation.model_specs or []):
        model = spec.get("model", "") if isinstance(spec, dict) else str(spec)
        counts[model] += 1
        labels[index] = model if counts[model] == 1 else f"{model} #{counts[model]}"
    return labels


def run_metrics(evaluation: Evaluation) -> dict[str, dict[str, Any]]:
    """Per model label: per scorer {mean, pass_rate} cells, plus cost_per_item and latency_p50
    cells. The figures are the evaluation page's own (selectors.evaluation_summary), so both
    pages show the same interval; the pass rate's interval is added here, over the same folded
    items (an item's pass rate is the share of its trials that passed)."""
    labels = _model_labels(evaluation)
    cells = selectors.evaluation_cells(evaluation)
    metrics: dict[str, dict[str, Any]] = {}
    for model in selectors.evaluation_summary(evaluation, cells=cells):
        index = model["index"]
        per_scorer = {}
        for name, summary in model["scorers"].items():
            pass_rates = []
            for (_, model_index), cell in sorted(cells.items()):
                if model_index != index:
                    continue
                passes = [
                    1.0 if p.scores[name].get("passed") else 0.0
                    for p in cell.scored
                    if isinstance(p.scores, dict)
                    and isinstance(p.scores.get(name), dict)
                    and isinstance(p.scores[name].get("score"), int | float)
                ]
                if passes:
                    pass_rates.append(sum(passes) / len(passes))
            rate = stats.mean_ci(pass_rates, seed=selectors.BOOTSTRAP_SEED)
            per_scorer[name] = {
                "mean": Cell(summary["mean"], summary["low"], summary["high"], summary["n"]),
                "pass_rate": Cell(rate.mean, rate.low, rate.high, len(pass_rates)),
            }
        metrics[labels.get(index, model["model"])] = {
            "scorers": per_scorer,
            "cost_per_item": Cell(model["cost_per_item_micros"], None, None, model["items"]),
            "latency_p50": Cell(model["p50_ms"], None, None, model["items"]),
        }
    return metrics


def _cell(metrics: dict[str, Any], column: dict) -> Cell | None:
    if column["metric"] in CALL_METRICS:
        return metrics[column["metric"]]
    per_scorer = metrics["scorers"].get(column["scorer"])
    return per_scorer[column["metric"]] if per_scorer else None


# --- The table -----------------------------------------------------------------------------------


def column_title(column: dict) -> str:
    metric = METRICS.get(column["metric"], column["metric"])
    if column["metric"] in CALL_METRICS:
        return f"{column['evaluation']} · {metric}"
    return f"{column['evaluation']} · {column['scorer']} · {metric}"


def _best(values: list[tuple[str, Cell]], minimize: bool) -> str | None:
    present = [(label, cell) for label, cell in values if cell and cell.value is not None]
    if not present:
        return None
    chooser = min if minimize else max
    return chooser(present, key=lambda item: item[1].value)[0]


def _overlaps(a: Cell, b: Cell) -> bool:
    """Two intervals overlap; a cell without an interval is its point."""
    a_low = a.value if a.low is None else a.low
    a_high = a.value if a.high is None else a.high
    b_low = b.value if b.low is None else b.low
    b_high = b.value if b.high is None else b.high
    return a_low <= b_high and b_low <= a_high


def leaderboard_table(leaderboard: Leaderboard) -> dict[str, Any]:
    """The leaderboard as data for its page and the API:
    - columns: [{evaluation, scorer, metric, minimize, title, run: {id, status, created_at} or
      None, best: model label or None}]
    - rows: [{model, cells: [{value, low, high, n} or None per column]}], best first by the first
      column (respecting minimize), models without a value in it last
    - chart: [{model, quality, quality_low, quality_high, cost_per_item_micros, latency_p50_ms,
      good_enough}] from the first column's run; good_enough marks the cheapest model whose
      interval overlaps the best one's ("good_enough_model")."""
    columns_out: list[dict] = []
    runs: dict[str, Evaluation | None] = {}
    metrics_by_run: dict[int, dict[str, dict[str, Any]]] = {}
    models: list[str] = []
    for column in leaderboard.columns:
        name = column["evaluation"]
        if name not in runs:
            runs[name] = latest_run(team_id=leaderboard.team_id, name=name)
            run = runs[name]
            if run is not None:
                metrics_by_run[run.pk] = run_metrics(run)
                for label in metrics_by_run[run.pk]:
                    if label not in models:
                        models.append(label)

    cells_by_column: list[dict[str, Cell | None]] = []
    for column in leaderboard.columns:
        run = runs[column["evaluation"]]
        per_model: dict[str, Cell | None] = {}
        if run is not None:
            for label, metrics in metrics_by_run[run.pk].items():
                per_model[label] = _cell(metrics, column)
        cells_by_column.append(per_model)
        columns_out.append(
            {
                **column,
                "title": column_title(column),
                "run": None
                if run is None
                else {
                    "id": run.pk,
                    "status": run.status,
                    "created_at": run.created_at.isoformat().replace("+00:00", "Z"),
                },
                "best": _best(list(per_model.items()), column["minimize"]),
            }
        )

    rows = [
        {
            "model": label,
            "cells": [
                cell.as_dict()
                if (cell := per_model.get(label)) is not None and cell.value is not None
                else None
                for per_model in cells_by_column
            ],
        }
        for label in models
    ]
    if columns_out:
        minimize = columns_out[0]["minimize"]

        def sort_key(row):
            cell = row["cells"][0]
            if cell is None or cell["value"] is None:
                return (1, 0.0, row["model"])
            return (0, cell["value"] if minimize else -cell["value"], row["model"])

        rows.sort(key=sort_key)

    chart, good_enough = _chart(leaderboard, runs, metrics_by_run)
    return {
        "id": leaderboard.pk,
        "name": leaderboard.name,
        "description": leaderboard.description,
        "team": leaderboard.team,
        "columns": columns_out,
        "rows": rows,
        "chart": chart,
        "good_enough_model": good_enough,
    }


def _chart(leaderboard, runs, metrics_by_run) -> tuple[list[dict], str | None]:
    if not leaderboard.columns:
        return [], None
    first = leaderboard.columns[0]
    run = runs.get(first["evaluation"])
    if run is None:
        return [], None
    points = []
    quality: dict[str, Cell] = {}
    for label, metrics in metrics_by_run[run.pk].items():
        cell = _cell(metrics, first)
        if cell is None or cell.value is None:
            continue
        quality[label] = cell
        points.append(
            {
                "model": label,
                "quality": cell.value,
                "quality_low": cell.low,
                "quality_high": cell.high,
                "cost_per_item_micros": metrics["cost_per_item"].value,
                "latency_p50_ms": metrics["latency_p50"].value,
                "good_enough": False,
            }
        )
    best = _best(list(quality.items()), first["minimize"])
    good_enough = None
    if best is not None:
        candidates = [
            point
            for point in points
            if _overlaps(quality[point["model"]], quality[best])
            and point["cost_per_item_micros"] is not None
        ]
        if candidates:
            cheapest = min(
                candidates,
                key=lambda p: (p["cost_per_item_micros"], p["model"] != best, p["model"]),
            )
            cheapest["good_enough"] = True
            good_enough = cheapest["model"]
    return points, good_enough


# --- Reads for pages and the API ---------------------------------------------------------------


def leaderboards_of_teams(team_ids) -> list[Leaderboard]:
    return list(Leaderboard.objects.filter(team_id__in=list(team_ids)).order_by("team", "name"))


def leaderboard_get(*, leaderboard_id: int, team_ids) -> Leaderboard | None:
    """The leaderboard if it belongs to one of `team_ids` (the caller's readable teams)."""
    return Leaderboard.objects.filter(pk=leaderboard_id, team_id__in=list(team_ids)).first()
