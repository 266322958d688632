"""Evaluations: creating one (every check before any write, then the evaluation and all its
predictions in one transaction) and cancelling one.

The caller (a view, the API) passes what this app does not look up: the team and project (ids
and names), the catalog's prices of the models the user may call (`prices`: model id ->
(input, output) micro-dollars per million tokens), and the gateway's prompt token estimator.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from django.db import connections, router, transaction
from django.utils import timezone

from evaluations.estimates import DEFAULT_MAX_TOKENS, evaluation_estimate
from evaluations.models import DatasetVersion, Evaluation, Prediction
from evaluations.scorers import SCORERS, scorer_validate

MAX_MODELS = 6
MAX_TRIALS = 10
MAX_SCORERS = 10
NAME_MAX = 100
SYSTEM_PROMPT_MAX = 100_000
# Rows x models x trials: one transaction writes them all.
MAX_PREDICTIONS = 100_000
# name -> (lowest, highest, integers only)
PARAMS: dict[str, tuple[float | None, float | None, bool]] = {
    "temperature": (0.0, 2.0, False),
    "top_p": (0.0, 1.0, False),
    "max_tokens": (1, 4096, True),
    "seed": (None, None, True),
}
NON_FIELD = "__all__"


class EvaluationInvalid(ValueError):
    """Every problem found, by field (the `evaluation_create` argument's name, or "__all__")."""

    def __init__(self, errors: dict[str, list[str]]):
        self.errors = errors
        super().__init__("; ".join(f"{k}: {m}" for k, msgs in errors.items() for m in msgs))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def _params_clean(params: Any, where: str, errors: list[str]) -> dict:
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        errors.append(f"{where}: params must be an object")
        return {}
    clean = {}
    for key, value in params.items():
        if key not in PARAMS:
            errors.append(f"{where}: unknown parameter {key!r} (allowed: {', '.join(PARAMS)})")
            continue
        low, high, integer = PARAMS[key]
        if integer and not _is_int(value):
            errors.append(f"{where}: {key} must be an integer")
        elif not integer and not _is_number(value):
            errors.append(f"{where}: {key} must be a number")
        elif low is not None and not low <= value <= high:
            errors.append(f"{where}: {key} must be between {low:g} and {high:g}")
        else:
            clean[key] = value
    clean.setdefault("max_tokens", DEFAULT_MAX_TOKENS)
    return clean


def _model_specs_clean(model_specs: Any, prices: Mapping, errors: list[str]) -> list[dict]:
    if not isinstance(model_specs, Sequence) or isinstance(model_specs, str) or not model_specs:
        errors.append("choose at least one model")
        return []
    if len(model_specs) > MAX_MODELS:
        errors.append(f"at most {MAX_MODELS} models ({len(model_specs)} given)")
    clean = []
    for number, spec in enumerate(model_specs, start=1):
        where = f"model {number}"
        if not isinstance(spec, Mapping) or not isinstance(spec.get("model"), str):
            errors.append(f'{where}: expected {{"model": "<catalog id>", "params": {{...}}}}')
            continue
        unknown = sorted(set(spec) - {"model", "params"})
        if unknown:
            errors.append(f"{where}: unknown key(s) {', '.join(unknown)}")
        model = spec["model"]
        if model not in prices:
            errors.append(f"{where}: {model!r} is not a model you can use")
        clean.append({"model": model, "params": _params_clean(spec.get("params"), where, errors)})
    return clean


def _scorers_clean(
    scorers: Any, columns: Sequence[str] | None, prices: Mapping, errors: list[str]
) -> list[dict]:
    if not isinstance(scorers, Sequence) or isinstance(scorers, str) or not scorers:
        errors.append("choose at least one scorer")
        return []
    if len(scorers) > MAX_SCORERS:
        errors.append(f"at most {MAX_SCORERS} scorers ({len(scorers)} given)")
    clean, names = [], set()
    for number, entry in enumerate(scorers, start=1):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("scorer"), str):
            errors.append(f'scorer {number}: expected {{"scorer": "<type>", "args": {{...}}}}')
            continue
        kind = entry["scorer"]
        # The display name (a leaderboard column names it) defaults to the type.
        name = entry.get("name") or kind
        where = f"scorer {number} ({name})" if isinstance(name, str) else f"scorer {number}"
        unknown = sorted(set(entry) - {"name", "scorer", "args", "mapping"})
        if unknown:
            errors.append(f"{where}: unknown key(s) {', '.join(unknown)}")
        if not isinstance(name, str) or not name.strip() or len(name) > NAME_MAX:
            errors.append(f"{where}: a name is 1 to {NAME_MAX} characters")
        elif name in names:
            errors.append(f"{where}: two scorers are named {name!r}; give each its own name")
        else:
            names.add(name)
        args = entry.get("args") or {}
        mapping = entry.get("mapping") or {}
        if not kind.strip():
            errors.append(f"scorer {number}: the scorer type is required")
            continue
        problems = scorer_validate(kind, args, mapping)
        errors.extend(f"scorer {number}: {problem}" for problem in problems)
        if problems:
            continue
        if kind == "llm_judge" and args["model"] not in prices:
            errors.append(f"scorer {number}: judge model {args['model']!r} is not available")
        if columns is not None:
            for param in SCORERS[kind].inputs:
                column = mapping.get(param.name, param.name)
                if param.required and param.name not in args and column not in columns:
                    errors.append(
                        f"{where}: reads the column {column!r}, which the dataset does not have"
                        + ("" if param.name in mapping else " (map it to one it has)")
                    )
        clean.append({"name": name, "scorer": kind, "args": dict(args), "mapping": dict(mapping)})
    return clean


def evaluation_create(
    *,
    organization_id: int,
    team_id: int,
    team: str,
    project_id: int,
    project: str,
    user_id: int,
    name: str,
    dataset_version_id: Any,
    scorers: Any,
    model_specs: Any,
    trials: Any = 1,
    system_prompt: Any = "",
    budget_micros: Any = None,
    prices: Mapping[str, tuple[int, int]],
    count_prompt_tokens: Callable[[dict], int],
) -> Evaluation:
    """A queued evaluation and its pending predictions (row x model x trial). Raises
    EvaluationInvalid with every problem found, having written nothing."""
    errors: dict[str, list[str]] = {}

    def problems(field: str) -> list[str]:
        return errors.setdefault(field, [])

    if not isinstance(name, str) or not name.strip() or len(name.strip()) > NAME_MAX:
        problems("name").append(f"a name is 1 to {NAME_MAX} characters")

    version = None
    if _is_int(dataset_version_id) or (
        isinstance(dataset_version_id, str) and dataset_version_id.isdigit()
    ):
        version = DatasetVersion.objects.filter(
            pk=int(dataset_version_id), dataset__project_id=project_id
        ).first()
    if version is None:
        problems("dataset_version_id").append("no such dataset version in this project")

    clean_models = _model_specs_clean(model_specs, prices, problems("model_specs"))
    clean_scorers = _scorers_clean(
        scorers, version.columns if version else None, prices, problems("scorers")
    )

    if not _is_int(trials) or not 1 <= trials <= MAX_TRIALS:
        problems("trials").append(f"trials is a whole number from 1 to {MAX_TRIALS}")
    if not isinstance(system_prompt, str):
        problems("system_prompt").append("the system prompt must be text")
    elif len(system_prompt) > SYSTEM_PROMPT_MAX:
        problems("system_prompt").append(f"at most {SYSTEM_PROMPT_MAX:,} characters")
    if budget_micros is not None and (not _is_int(budget_micros) or budget_micros < 0):
        problems("budget_micros").append("the budget is a positive amount, or none")

    errors = {field: messages for field, messages in errors.items() if messages}
    if not errors and version is not None:
        total = version.row_count * len(clean_models) * trials
        if total > MAX_PREDICTIONS:
            errors[NON_FIELD] = [
                f"{version.row_count:,} rows x {len(clean_models)} models x {trials} trials "
                f"is {total:,} predictions; the limit is {MAX_PREDICTIONS:,}"
            ]
    if errors:
        raise EvaluationInvalid(errors)

    rows = list(version.rows.order_by("index").values_list("data", flat=True))
    estimate = evaluation_estimate(
        rows=rows,
        model_specs=clean_models,
        scorers=clean_scorers,
        trials=trials,
        system_prompt=system_prompt,
        prices=prices,
        count_prompt_tokens=count_prompt_tokens,
    )
    with transaction.atomic():
        evaluation = Evaluation.objects.create(
            organization_id=organization_id,
            team_id=team_id,
            project_id=project_id,
            team=team,
            project=project,
            created_by_id=user_id,
            name=name.strip(),
            dataset_version=version,
            scorers=clean_scorers,
            model_specs=clean_models,
            system_prompt=system_prompt,
            trials=trials,
            budget_micros=budget_micros,
            estimate_micros=estimate.estimate_micros,
            worst_case_micros=estimate.worst_case_micros,
            status=Evaluation.Status.QUEUED,
            trace_id=secrets.token_hex(16),
        )
        _predictions_insert(
            evaluation,
            [
                (row_index, model_index, trial, spec["model"])
                for row_index in range(len(rows))
                for model_index, spec in enumerate(clean_models)
                for trial in range(trials)
            ],
        )
    return evaluation


def _predictions_insert(evaluation: Evaluation, keys: list[tuple[int, int, int, str]]) -> None:
    """Pending predictions for (row_index, model_index, trial, model) keys, by executemany:
    bulk_create spends ~0.3 ms a row preparing 19 values one by one, which for 60,000
    predictions (10,000 rows x 6 models) is 20 s in a web request. Every other column is the
    same in all rows: its value is prepared once, as the ORM would save it."""
    connection = connections[router.db_for_write(Prediction)]
    fields = [f for f in Prediction._meta.concrete_fields if not f.primary_key]
    template = Prediction(evaluation=evaluation, status=Prediction.Status.PENDING)
    varying = ["row_index", "model_index", "trial", "model"]
    constant = {
        f.name: f.get_db_prep_save(f.pre_save(template, add=True), connection)
        for f in fields
        if f.name not in varying
    }
    base = [constant.get(f.name) for f in fields]
    positions = [(i, varying.index(f.name)) for i, f in enumerate(fields) if f.name in varying]
    quote = connection.ops.quote_name
    sql = "INSERT INTO {} ({}) VALUES ({})".format(
        quote(Prediction._meta.db_table),
        ", ".join(quote(f.column) for f in fields),
        ", ".join(["%s"] * len(fields)),
    )
    with connection.cursor() as cursor:
        for start in range(0, len(keys), 5000):
            batch = []
            for key in keys[start : start + 5000]:
                row = base.copy()
                for position, index in positions:
                    row[position] = key[index]
                batch.append(row)
            cursor.executemany(sql, batch)


def evaluation_cancel(*, evaluation_id: int, project_ids: Sequence[int]) -> Evaluation:
    """Cancel the evaluation (unless it has already ended): its pending predictions are
    skipped; running ones finish (the runner checks the status before each call).
    Evaluation.DoesNotExist if it is not in one of `project_ids`."""
    with transaction.atomic():
        evaluation = Evaluation.objects.select_for_update().get(
            pk=evaluation_id, project_id__in=project_ids
        )
        if evaluation.status in Evaluation.TERMINAL:
            return evaluation
        evaluation.status = Evaluation.Status.CANCELLED
        evaluation.finished_at = timezone.now()
        evaluation.save(update_fields=["status", "finished_at"])
        evaluation.predictions.filter(status=Prediction.Status.PENDING).update(
            status=Prediction.Status.SKIPPED
        )
    return evaluation
