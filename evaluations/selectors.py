"""Reads for the datasets and evaluations pages (and the leaderboards and the API, which reuse
the summaries): lists, progress snapshots, per-model summaries with intervals, the results
matrix and paired comparisons.

Everything is computed from Prediction rows on each call; nothing is cached yet. Access is the
caller's: functions that look a row up by id take the project ids the user may read, and give
None for anything outside them (the pages answer 404).

The unit of every statistic is the dataset item: a (model, item)'s trials are folded first
(their mean), then intervals and paired comparisons resample items. Predictions that ended in
an error carry no score: they are counted apart (`errors`) and left out of means, so `n` says
how many items a figure stands on.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, Q, Sum
from django.utils import timezone

from evaluations import stats
from evaluations.models import Dataset, DatasetRow, DatasetVersion, Evaluation, Prediction

# Fixed: the same predictions always show the same intervals (a page reload must not move them).
BOOTSTRAP_SEED = 0
# A (model, item, scorer) whose trials spread at least this much (standard deviation of 0..1
# scores: one pass and one fail in two trials is 0.5) is "high variance".
HIGH_VARIANCE_SPREAD = 0.25
PREVIEW_CHARS = 240
# A run that has not moved for this long (no prediction finished or claimed) is stalled: its
# page offers Resume.
STALL_SECONDS = 120
MATRIX_PAGE_ROWS = 50


# --- Lists and look-ups ---------------------------------------------------------------------------


def evaluations_for_project(*, project_id: int, limit: int = 100) -> list[Evaluation]:
    """The project's evaluations, newest first, with their dataset version and counts of
    predictions by status (`done_count`, `error_count`, `skipped_count`)."""
    return list(
        Evaluation.objects.filter(project_id=project_id)
        .select_related("dataset_version__dataset")
        .annotate(
            done_count=Count("predictions", filter=Q(predictions__status=Prediction.Status.DONE)),
            error_count=Count("predictions", filter=Q(predictions__status=Prediction.Status.ERROR)),
            skipped_count=Count(
                "predictions", filter=Q(predictions__status=Prediction.Status.SKIPPED)
            ),
        )
        .order_by("-created_at", "-pk")[:limit]
    )


def datasets_for_project(*, project_id: int) -> list[Dataset]:
    """The project's datasets by name, each with `version_count`, `latest` (its newest version)."""
    datasets = list(
        Dataset.objects.filter(project_id=project_id)
        .annotate(version_count=Count("versions"))
        .order_by("name", "pk")
    )
    latest: dict[int, DatasetVersion] = {}
    for version in DatasetVersion.objects.filter(dataset__in=datasets).order_by("number"):
        latest[version.dataset_id] = version
    for dataset in datasets:
        dataset.latest = latest.get(dataset.pk)
    return datasets


def dataset_versions_for_project(*, project_id: int) -> list[DatasetVersion]:
    """Every version of the project's datasets (the new evaluation form's choices): datasets by
    name, newest version first."""
    return list(
        DatasetVersion.objects.filter(dataset__project_id=project_id)
        .select_related("dataset")
        .order_by("dataset__name", "-number")
    )


def dataset_find(*, dataset_id: int, project_ids) -> Dataset | None:
    return Dataset.objects.filter(pk=dataset_id, project_id__in=list(project_ids)).first()


def dataset_versions(*, dataset: Dataset) -> list[DatasetVersion]:
    return list(dataset.versions.order_by("-number"))


def evaluation_find(*, evaluation_id: int, project_ids) -> Evaluation | None:
    return (
        Evaluation.objects.filter(pk=evaluation_id, project_id__in=list(project_ids))
        .select_related("dataset_version__dataset")
        .first()
    )


# --- Progress -------------------------------------------------------------------------------------


def evaluation_total(evaluation: Evaluation) -> int:
    """Predictions the run makes: rows x models x trials (whether or not the runner has written
    their rows yet)."""
    return evaluation.dataset_version.row_count * len(evaluation.model_specs) * evaluation.trials


def evaluation_progress(evaluation_id: int) -> dict[str, Any] | None:
    """A snapshot of a run, as the progress bar and its websocket show it; None if it is gone.

    eta_seconds: while running, the time the finished predictions took per prediction times
    those left (None before the first one finishes, and once the run is over)."""
    evaluation = (
        Evaluation.objects.filter(pk=evaluation_id).select_related("dataset_version").first()
    )
    if evaluation is None:
        return None
    counts = dict(
        Prediction.objects.filter(evaluation_id=evaluation_id)
        .values_list("status")
        .annotate(n=Count("pk"))
        .values_list("status", "n")
    )
    done = counts.get(Prediction.Status.DONE, 0)
    errors = counts.get(Prediction.Status.ERROR, 0)
    skipped = counts.get(Prediction.Status.SKIPPED, 0)
    total = evaluation_total(evaluation)
    finished = done + errors + skipped
    eta = None
    terminal = evaluation.status in Evaluation.TERMINAL
    if not terminal and evaluation.started_at is not None and done + errors > 0:
        elapsed = (timezone.now() - evaluation.started_at).total_seconds()
        left = max(total - finished, 0)
        eta = round(elapsed / (done + errors) * left)
    stalled = False
    if not terminal:
        last = (
            Prediction.objects.filter(evaluation_id=evaluation_id)
            .order_by("-updated_at")
            .values_list("updated_at", flat=True)
            .first()
        )
        moved = max(t for t in (last, evaluation.started_at, evaluation.created_at) if t)
        stalled = (timezone.now() - moved).total_seconds() > STALL_SECONDS
    return {
        "id": evaluation.pk,
        "status": evaluation.status,
        "status_label": evaluation.get_status_display(),
        "terminal": terminal,
        "done": done,
        "errors": errors,
        "skipped": skipped,
        "total": total,
        "percent": round(100 * finished / total, 1) if total else 0.0,
        "spent_micros": evaluation.spent_micros,
        "budget_micros": evaluation.budget_micros,
        "eta_seconds": eta,
        "error": evaluation.error,
        "stalled": stalled,
    }


# --- Folding predictions --------------------------------------------------------------------------


@dataclass
class _Cell:
    """One (item, model): its trials."""

    trials: list[Prediction] = field(default_factory=list)

    @property
    def scored(self) -> list[Prediction]:
        return [p for p in self.trials if p.status == Prediction.Status.DONE]


def _scorer_names(evaluation: Evaluation) -> list[str]:
    return [spec.get("name") or spec.get("scorer") for spec in evaluation.scorers]


def _cells(evaluation: Evaluation) -> dict[tuple[int, int], _Cell]:
    cells: dict[tuple[int, int], _Cell] = defaultdict(_Cell)
    predictions = Prediction.objects.filter(evaluation=evaluation).order_by(
        "row_index", "model_index", "trial"
    )
    for prediction in predictions:
        cells[(prediction.row_index, prediction.model_index)].trials.append(prediction)
    return cells


def _fold_scorer(cell: _Cell, scorer: str) -> dict[str, Any] | None:
    """A cell's trials for one scorer: mean score, spread, share of trials passed; None when no
    trial has this score."""
    values, passes = [], []
    for prediction in cell.scored:
        result = prediction.scores.get(scorer) if isinstance(prediction.scores, dict) else None
        if not isinstance(result, dict) or not isinstance(result.get("score"), int | float):
            continue
        values.append(float(result["score"]))
        passes.append(1.0 if result.get("passed") else 0.0)
    if not values:
        return None
    mean, spread = stats.fold_trials(values)
    pass_rate = sum(passes) / len(passes)
    return {
        "score": mean,
        "spread": spread,
        "pass_rate": pass_rate,
        # Most trials passed: what "passes" means for a folded cell (filters, ✓/✗).
        "passed": pass_rate >= 0.5,
        "trials": len(values),
    }


def _model_labels(evaluation: Evaluation) -> list[dict[str, Any]]:
    return [
        {"index": i, "model": spec.get("model", ""), "params": spec.get("params") or {}}
        for i, spec in enumerate(evaluation.model_specs)
    ]


# --- Summary --------------------------------------------------------------------------------------


def evaluation_summary(evaluation: Evaluation, *, cells=None) -> list[dict[str, Any]]:
    """Per model (in the evaluation's order):
    {"index", "model", "items" (items with a finished prediction), "errors",
     "cost_micros" (all its predictions, judge calls included), "cost_per_item_micros",
     "p50_ms", "p95_ms",
     "scorers": {name: {"mean", "low", "high" (95% bootstrap over items), "pass_rate", "n",
                        "cost_per_item_micros", "p50_ms", "p95_ms"}}}
    Figures with no data are None."""
    cells = _cells(evaluation) if cells is None else cells
    scorers = _scorer_names(evaluation)
    summaries = []
    for model in _model_labels(evaluation):
        index = model["index"]
        model_cells = [cell for (_, m), cell in sorted(cells.items()) if m == index]
        finished = [
            cell
            for cell in model_cells
            if any(
                p.status in (Prediction.Status.DONE, Prediction.Status.ERROR) for p in cell.trials
            )
        ]
        cost = sum(p.cost_micros for cell in model_cells for p in cell.trials)
        latencies = [
            p.latency_ms for cell in model_cells for p in cell.scored if p.latency_ms is not None
        ]
        errors = sum(
            1 for cell in model_cells for p in cell.trials if p.status == Prediction.Status.ERROR
        )
        cost_per_item = round(cost / len(finished)) if finished else None
        p50 = _rounded(stats.percentile(latencies, 50))
        p95 = _rounded(stats.percentile(latencies, 95))
        per_scorer = {}
        for scorer in scorers:
            folded = [f for cell in model_cells if (f := _fold_scorer(cell, scorer)) is not None]
            interval = stats.mean_ci([f["score"] for f in folded], seed=BOOTSTRAP_SEED)
            per_scorer[scorer] = {
                "mean": interval.mean,
                "low": interval.low,
                "high": interval.high,
                "pass_rate": (sum(f["pass_rate"] for f in folded) / len(folded))
                if folded
                else None,
                "n": len(folded),
                "cost_per_item_micros": cost_per_item,
                "p50_ms": p50,
                "p95_ms": p95,
            }
        summaries.append(
            {
                **model,
                "items": len(finished),
                "errors": errors,
                "cost_micros": cost,
                "cost_per_item_micros": cost_per_item,
                "p50_ms": p50,
                "p95_ms": p95,
                "scorers": per_scorer,
            }
        )
    return summaries


def _rounded(value: float | None) -> int | None:
    return None if value is None else round(value)


def evaluation_compare(
    evaluation: Evaluation, model_a: int, model_b: int, *, cells=None
) -> list[dict[str, Any]]:
    """Model a against model b, per scorer, over the items both were scored on (paired
    bootstrap): [{"scorer", "mean_diff", "low", "high", "verdict", "n"}]; verdict is a's:
    "better", "worse" or "no clear difference"."""
    cells = _cells(evaluation) if cells is None else cells
    rows = sorted({row for (row, _) in cells})
    results = []
    for scorer in _scorer_names(evaluation):
        a_values, b_values = [], []
        for row in rows:
            a_cell, b_cell = cells.get((row, model_a)), cells.get((row, model_b))
            if a_cell is None or b_cell is None:
                continue
            a, b = _fold_scorer(a_cell, scorer), _fold_scorer(b_cell, scorer)
            if a is None or b is None:
                continue
            a_values.append(a["score"])
            b_values.append(b["score"])
        result = stats.paired_difference(a_values, b_values, seed=BOOTSTRAP_SEED)
        results.append(
            {
                "scorer": scorer,
                "mean_diff": result.mean_diff,
                "low": result.low,
                "high": result.high,
                "verdict": result.verdict,
                "n": result.n,
            }
        )
    return results


# --- Matrix ---------------------------------------------------------------------------------------


def row_input_preview(data: dict, limit: int = PREVIEW_CHARS) -> str:
    """A row's input as one text: `input`, else the last user message of `messages`."""
    text: Any = data.get("input")
    if text is None and isinstance(data.get("messages"), list):
        users = [
            m.get("content")
            for m in data["messages"]
            if isinstance(m, dict) and m.get("role") == "user"
        ]
        text = users[-1] if users else ""
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _expected_text(data: dict) -> str:
    expected = data.get("expected")
    if expected is None:
        return ""
    return expected if isinstance(expected, str) else str(expected)


MATRIX_FILTERS = ("failures", "disagree", "variance")


def evaluation_matrix(
    evaluation: Evaluation, filters=None, *, offset: int = 0, limit: int = MATRIX_PAGE_ROWS
) -> dict[str, Any]:
    """The results matrix: a row per dataset item (input preview, expected), a cell per model.

    filters: a set of names among MATRIX_FILTERS, all of which a row must meet:
      failures: some scorer fails for some model (most trials failed, or the call errored);
      disagree: some scorer passes for one model and fails for another;
      variance: some (model, scorer)'s trials spread at least HIGH_VARIANCE_SPREAD.
    Returns {"models", "scorers", "rows", "matched" (rows meeting the filters), "offset",
    "next_offset" (None at the end), "items" (rows with any prediction)}. A cell:
    {"status", "output" (trial 0's, or the first finished trial's), "error", "trials",
     "scores": [{"name", "score", "spread", "passed", "pass_rate", "trials"} or None per scorer],
     "latency_ms" (mean over scored trials), "cost_micros" (sum over trials),
     "request_id" (the shown trial's gateway request)}."""
    filters = set(filters or ())
    cells = _cells(evaluation)
    models = _model_labels(evaluation)
    scorers = _scorer_names(evaluation)
    row_indexes = sorted({row for (row, _) in cells})
    matched = []
    for row_index in row_indexes:
        row_cells = []
        for model in models:
            cell = cells.get((row_index, model["index"]))
            row_cells.append(_matrix_cell(cell, scorers))
        if _keep(row_cells, filters):
            matched.append((row_index, row_cells))
    page = matched[offset : offset + limit]
    data_by_index = dict(
        DatasetRow.objects.filter(
            version_id=evaluation.dataset_version_id, index__in=[i for i, _ in page]
        ).values_list("index", "data")
    )
    rows = []
    for row_index, row_cells in page:
        data = data_by_index.get(row_index) or {}
        rows.append(
            {
                "index": row_index,
                "input": row_input_preview(data),
                "expected": _expected_text(data),
                "cells": row_cells,
            }
        )
    return {
        "models": models,
        "scorers": scorers,
        "rows": rows,
        "matched": len(matched),
        "items": len(row_indexes),
        "offset": offset,
        "next_offset": offset + limit if offset + limit < len(matched) else None,
    }


def _matrix_cell(cell: _Cell | None, scorers: list[str]) -> dict[str, Any]:
    if cell is None or not cell.trials:
        return {
            "status": "pending",
            "output": "",
            "error": "",
            "trials": 0,
            "scores": [None] * len(scorers),
            "latency_ms": None,
            "cost_micros": 0,
            "request_id": "",
        }
    scored = cell.scored
    shown = scored[0] if scored else cell.trials[0]
    latencies = [p.latency_ms for p in scored if p.latency_ms is not None]
    statuses = {p.status for p in cell.trials}
    if Prediction.Status.DONE in statuses:
        status = "done"
    elif Prediction.Status.ERROR in statuses:
        status = "error"
    elif statuses & {Prediction.Status.PENDING, Prediction.Status.RUNNING}:
        status = "pending"
    else:
        status = "skipped"
    scores = []
    for scorer in scorers:
        folded = _fold_scorer(cell, scorer)
        scores.append({"name": scorer, **folded} if folded else None)
    return {
        "status": status,
        "output": shown.output,
        "error": next((p.error for p in cell.trials if p.error), ""),
        "trials": len(scored),
        "scores": scores,
        "latency_ms": round(sum(latencies) / len(latencies)) if latencies else None,
        "cost_micros": sum(p.cost_micros for p in cell.trials),
        # The shown trial's gateway request (its traced call has the same request id).
        "request_id": shown.request_id,
    }


def _keep(row_cells: list[dict], filters: set[str]) -> bool:
    if "failures" in filters:
        failed = any(cell["status"] == "error" for cell in row_cells) or any(
            score is not None and not score["passed"]
            for cell in row_cells
            for score in cell["scores"]
        )
        if not failed:
            return False
    if "disagree" in filters:
        scorer_count = len(row_cells[0]["scores"]) if row_cells else 0
        disagree = False
        for i in range(scorer_count):
            verdicts = {
                cell["scores"][i]["passed"] for cell in row_cells if cell["scores"][i] is not None
            }
            if len(verdicts) > 1:
                disagree = True
                break
        if not disagree:
            return False
    if "variance" in filters:
        varied = any(
            score is not None and score["spread"] >= HIGH_VARIANCE_SPREAD
            for cell in row_cells
            for score in cell["scores"]
        )
        if not varied:
            return False
    return True


def evaluation_cells(evaluation: Evaluation):
    """The predictions grouped by (row, model), to share between summary and comparison."""
    return _cells(evaluation)


def evaluation_spent(evaluation: Evaluation) -> int:
    """What its predictions cost, by the rows (the ledger's figures the runner copied)."""
    return (
        Prediction.objects.filter(evaluation=evaluation).aggregate(total=Sum("cost_micros"))[
            "total"
        ]
        or 0
    )
