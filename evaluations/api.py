"""The evaluations API for scripts, under /v1 with the same keys and OpenAI-Project header:
datasets, evaluations (start, poll, results, cancel) and leaderboards as JSON.

Thin async views like the rest of /v1 (inference_app/api/views.py): the caller is resolved by
the API's own admission, every database read or write runs on the gateway's database threads
(run_db; /v1 code never touches the ORM on the event loop), and every refusal is a GatewayError
in OpenAI's error shape with `param` naming the field. Another project's (or organization's)
dataset, evaluation or leaderboard is a 404, as if it did not exist. A refused request writes
nothing: the services validate everything before their one transaction.
"""

from __future__ import annotations

import logging
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any

from asgiref.sync import sync_to_async
from django.db import connections
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from evaluations import leaderboards, selectors
from evaluations.datasets import DatasetError, dataset_rows_parse, dataset_version_create
from evaluations.models import Dataset, DatasetRow, DatasetVersion, Evaluation, Prediction
from evaluations.services import EvaluationInvalid, evaluation_cancel, evaluation_create
from inference_app.api.views import _read_body, api_view, authenticate_request, json_response
from inference_app.celery import app as celery_app
from inference_app.gateway import errors
from inference_app.gateway.callers import Caller
from inference_app.gateway.db_threads import run_db
from inference_app.gateway.errors import GatewayError
from inference_app.gateway.requests import check_json_values, parse_json_body
from inference_app.gateway.tokens import estimate_prompt_tokens
from inference_app.models import CatalogModel, Project

log = logging.getLogger(__name__)

# The most prompt tokens one image may take (the catalog's default bound, as the pages use).
IMAGE_TOKENS = 2467
# Ids beyond a 64-bit integer cannot exist; the database would refuse to compare them.
MAX_ID = 2**63 - 1
# A budget above this is a typo, not a budget (and would overflow the micros column).
MAX_BUDGET_DOLLARS = Decimal(1_000_000_000)
RESULTS_LIMIT = 10_000

# evaluation_create's argument names -> the API's field names.
_EVALUATION_FIELDS = {
    "name": "name",
    "dataset_version_id": "dataset",
    "scorers": "scorers",
    "model_specs": "models",
    "trials": "trials",
    "system_prompt": "system_prompt",
    "budget_micros": "budget",
}
_EVALUATION_KEYS = {
    "name",
    "dataset",
    "version",
    "models",
    "scorers",
    "trials",
    "system_prompt",
    "budget",
}
_LEADERBOARD_KEYS = {"name", "description", "columns", "show_arena"}


# --- Shapes --------------------------------------------------------------------------------------


def _dollars(micros: int | None) -> str | None:
    return None if micros is None else f"{Decimal(micros).scaleb(-6):f}"


def _time(value) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def _not_found(kind: str, ident: Any, param: str | None = None) -> GatewayError:
    return GatewayError(
        status=404,
        message=f"No {kind.replace('_', ' ')} {ident} in this project.",
        type="invalid_request_error",
        code=f"{kind}_not_found",
        param=param,
    )


def _version_data(version: DatasetVersion, created: bool | None = None) -> dict:
    data = {
        "object": "dataset.version",
        "id": version.pk,
        "dataset_id": version.dataset_id,
        "name": version.dataset.name,
        "version": version.number,
        "content_hash": version.content_hash,
        "row_count": version.row_count,
        "columns": list(version.columns),
        "source": version.source,
        "created_at": _time(version.created_at),
    }
    if created is not None:
        data["created"] = created
    return data


def _calls(evaluation: Evaluation) -> int:
    """Every call the run makes: a prediction per (row, model, trial), plus one per judge
    scorer for each prediction."""
    predictions = (
        evaluation.dataset_version.row_count * len(evaluation.model_specs) * evaluation.trials
    )
    judges = sum(1 for s in evaluation.scorers if s.get("scorer") == "llm_judge")
    return predictions * (1 + judges)


def _evaluation_data(evaluation: Evaluation, *, with_results: bool = True) -> dict:
    version = evaluation.dataset_version
    data = {
        "object": "evaluation",
        "id": evaluation.pk,
        "name": evaluation.name,
        "status": evaluation.status,
        "team": evaluation.team,
        "project": evaluation.project,
        "dataset": {
            "id": version.pk,
            "dataset_id": version.dataset_id,
            "name": version.dataset.name,
            "version": version.number,
            "row_count": version.row_count,
        },
        "models": evaluation.model_specs,
        "scorers": evaluation.scorers,
        "trials": evaluation.trials,
        "system_prompt": evaluation.system_prompt,
        "calls": _calls(evaluation),
        "estimate": _dollars(evaluation.estimate_micros),
        "estimate_micros": evaluation.estimate_micros,
        "worst_case": _dollars(evaluation.worst_case_micros),
        "worst_case_micros": evaluation.worst_case_micros,
        "budget": _dollars(evaluation.budget_micros),
        "budget_micros": evaluation.budget_micros,
        "spent": _dollars(evaluation.spent_micros),
        "spent_micros": evaluation.spent_micros,
        "error": evaluation.error or None,
        "trace_id": evaluation.trace_id,
        "created_at": _time(evaluation.created_at),
        "started_at": _time(evaluation.started_at),
        "finished_at": _time(evaluation.finished_at),
    }
    if with_results:
        progress = selectors.evaluation_progress(evaluation.pk) or {}
        data["progress"] = {
            key: progress.get(key)
            for key in ("done", "errors", "skipped", "total", "percent", "eta_seconds", "stalled")
        }
        data["summary"] = None
        if evaluation.status in Evaluation.TERMINAL:
            data["summary"] = selectors.evaluation_summary(evaluation)
    return data


# --- Reading the request -------------------------------------------------------------------------


def _json_body(request: HttpRequest) -> dict:
    body = parse_json_body(_read_body(request))
    check_json_values(body)
    _check_no_nul(body)
    return body


def _check_no_nul(value: Any, path: str = "") -> None:
    """PostgreSQL stores no NUL character in text (nor in JSON): refuse it here, by field,
    rather than fail in the database."""
    if isinstance(value, str):
        if "\x00" in value:
            raise errors.invalid_request(
                f"Invalid value at '{path}': text cannot contain a NUL character.",
                param=path.split(".", 1)[0].split("[", 1)[0] or None,
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_no_nul(key, path or key)
            _check_no_nul(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_no_nul(item, f"{path}[{index}]")


def _unknown_keys(body: dict, allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise errors.invalid_request(
            f"Unknown parameter: {unknown[0]}. Allowed: {', '.join(sorted(allowed))}.",
            param=unknown[0],
        )


def _budget_micros(value: Any) -> int | None:
    """A budget in dollars (a number or a decimal string) as micro-dollars, or None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise errors.invalid_request(
            'budget is an amount in dollars: a number or a string such as "0.50".',
            param="budget",
        )
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        amount = None
    if amount is None or not amount.is_finite() or amount < 0 or amount > MAX_BUDGET_DOLLARS:
        raise errors.invalid_request(
            f"budget must be an amount in dollars from 0 to {MAX_BUDGET_DOLLARS:,}.",
            param="budget",
        )
    return int((amount * 1_000_000).to_integral_value(rounding=ROUND_DOWN))


def _check_scorer_entries(scorers: Any) -> None:
    """Shapes the service expects to read (its own checks name every other problem)."""
    if not isinstance(scorers, list):
        return  # the service says "choose at least one scorer"
    for number, entry in enumerate(scorers, start=1):
        if not isinstance(entry, dict):
            raise errors.invalid_request(
                f'scorers[{number - 1}] must be an object: {{"name", "scorer", "args", "mapping"}}.',
                param="scorers",
            )
        if "name" in entry and entry["name"] is not None and not isinstance(entry["name"], str):
            raise errors.invalid_request(
                f"scorers[{number - 1}].name must be a string.", param="scorers"
            )


def _positive_id(value: int, kind: str) -> int:
    if value > MAX_ID:
        raise _not_found(kind, value)
    return value


# --- Database work (on the gateway's database threads) -------------------------------------------


def _team_id(caller: Caller) -> int:
    return Project.objects.filter(pk=caller.project_id).values_list("team_id", flat=True).get()


def _prices() -> dict[str, tuple[int, int]]:
    """The models the caller can run: listed in the catalog with an enabled deployment."""
    return {
        model_id: (inp, out)
        for model_id, inp, out in CatalogModel.objects.filter(deployments__is_enabled=True)
        .distinct()
        .values_list("model_id", "input_price_micros", "output_price_micros")
    }


def _count_prompt_tokens(body: dict) -> int:
    return estimate_prompt_tokens(body, image_tokens=IMAGE_TOKENS)


def _dataset_create(caller: Caller, *, name: Any, rows: Any, filename: str, source: str) -> tuple:
    if not isinstance(name, str):
        raise errors.invalid_request("name is required: the dataset's name.", param="name")
    try:
        version, created = dataset_version_create(
            organization_id=caller.organization_id,
            project_id=caller.project_id,
            name=name,
            rows=rows,
            source=source,
            filename=filename,
            user_id=caller.user_id,
        )
    except DatasetError as exc:
        message = str(exc)
        param = "name" if message.startswith("name:") else ("file" if filename else "rows")
        raise errors.invalid_request(message, param=param) from None
    version = DatasetVersion.objects.select_related("dataset").get(pk=version.pk)
    return _version_data(version, created), created


def _datasets_list(caller: Caller) -> list[dict]:
    versions = (
        DatasetVersion.objects.filter(dataset__project_id=caller.project_id)
        .select_related("dataset")
        .order_by("dataset__name", "-number")
    )
    return [_version_data(version) for version in versions]


def _dataset_version(caller: Caller, dataset: Any, version: Any) -> int:
    """The dataset version an evaluation names: `dataset` is a version's id (what POST
    /v1/datasets answered) or a dataset's name, with `version` its number (default: latest)."""
    if dataset is None:
        raise errors.invalid_request(
            "dataset is required: a dataset's name or a dataset version's id.", param="dataset"
        )
    if isinstance(dataset, int) and not isinstance(dataset, bool):
        if version is not None:
            raise errors.invalid_request(
                "version goes with a dataset's name; a dataset version's id names one version.",
                param="version",
            )
        found = (
            DatasetVersion.objects.filter(
                pk=dataset if 0 < dataset <= MAX_ID else 0, dataset__project_id=caller.project_id
            )
            .values_list("pk", flat=True)
            .first()
        )
        if found is None:
            raise _not_found("dataset", dataset, param="dataset")
        return found
    if not isinstance(dataset, str) or not dataset:
        raise errors.invalid_request(
            "dataset must be a dataset's name or a dataset version's id.", param="dataset"
        )
    record = Dataset.objects.filter(project_id=caller.project_id, name=dataset).first()
    if record is None:
        raise _not_found("dataset", repr(dataset), param="dataset")
    versions = record.versions.order_by("-number")
    if version is not None:
        if isinstance(version, bool) or not isinstance(version, int):
            raise errors.invalid_request("version must be a version number.", param="version")
        versions = versions.filter(number=version)
    found = versions.values_list("pk", flat=True).first()
    if found is None:
        raise _not_found("dataset_version", f"{dataset!r} v{version}", param="version")
    return found


def _evaluation_create(caller: Caller, body: dict, budget_micros: int | None) -> int:
    version_id = _dataset_version(caller, body.get("dataset"), body.get("version"))
    try:
        evaluation = evaluation_create(
            organization_id=caller.organization_id,
            team_id=_team_id(caller),
            team=caller.team,
            project_id=caller.project_id,
            project=caller.project,
            user_id=caller.user_id,
            name=body.get("name"),
            dataset_version_id=version_id,
            scorers=body.get("scorers"),
            model_specs=body.get("models"),
            trials=body.get("trials", 1),
            system_prompt=body.get("system_prompt", "") or "",
            budget_micros=budget_micros,
            prices=_prices(),
            count_prompt_tokens=_count_prompt_tokens,
        )
    except EvaluationInvalid as exc:
        raise _evaluation_invalid(exc) from None
    return evaluation.pk


def _start(evaluation_id: int) -> None:
    from evaluations.runs import evaluation_start

    try:
        evaluation_start(evaluation_id)
    except Exception:
        # The broker refused the tasks: the run stays "running" with pending predictions,
        # which the stalled-run sweep (beat) enqueues again. The evaluation itself is whole.
        log.exception("could not enqueue evaluation %s; the stalled-run sweep will", evaluation_id)


def _start_eagerly(evaluation_id: int) -> None:
    try:
        _start(evaluation_id)
    finally:
        connections.close_all()  # this thread's own connection, opened for this run


async def _start_evaluation(evaluation_id: int) -> None:
    """Send the run's tasks. With Celery in eager mode (test stacks, a laptop without a
    worker) the tasks run right here, and each makes gateway calls whose database work needs
    the database threads: so the start runs on a thread of its own then, never on them."""
    if celery_app.conf.task_always_eager:
        await sync_to_async(_start_eagerly, thread_sensitive=False)(evaluation_id)
    else:
        await run_db(_start, evaluation_id)


def _evaluation_created(evaluation_id: int) -> dict:
    evaluation = Evaluation.objects.select_related("dataset_version__dataset").get(pk=evaluation_id)
    return _evaluation_data(evaluation, with_results=False)


def _evaluation_invalid(exc: EvaluationInvalid) -> GatewayError:
    fields = [field for field, messages in exc.errors.items() if messages]
    parts = []
    for field in fields:
        name = _EVALUATION_FIELDS.get(field)
        for message in exc.errors[field]:
            parts.append(f"{name}: {message}" if name else message)
    param = next((_EVALUATION_FIELDS[f] for f in fields if f in _EVALUATION_FIELDS), None)
    return errors.invalid_request("; ".join(parts) or "Invalid evaluation.", param=param)


def _evaluation_find(caller: Caller, evaluation_id: int) -> Evaluation:
    evaluation = selectors.evaluation_find(
        evaluation_id=evaluation_id, project_ids=[caller.project_id]
    )
    if evaluation is None:
        raise _not_found("evaluation", evaluation_id)
    return evaluation


def _evaluation_get(caller: Caller, evaluation_id: int) -> dict:
    return _evaluation_data(_evaluation_find(caller, evaluation_id))


def _evaluations_list(caller: Caller) -> list[dict]:
    return [
        _evaluation_data(evaluation, with_results=False)
        for evaluation in selectors.evaluations_for_project(project_id=caller.project_id)
    ]


def _results(caller: Caller, evaluation_id: int, offset: int, limit: int) -> dict:
    evaluation = _evaluation_find(caller, evaluation_id)
    predictions = list(
        Prediction.objects.filter(evaluation=evaluation).order_by(
            "row_index", "model_index", "trial"
        )[offset : offset + limit + 1]
    )
    has_more = len(predictions) > limit
    predictions = predictions[:limit]
    indexes = {p.row_index for p in predictions}
    items = dict(
        DatasetRow.objects.filter(
            version_id=evaluation.dataset_version_id, index__in=indexes
        ).values_list("index", "data")
    )
    data = [
        {
            "row": p.row_index,
            "item": items.get(p.row_index),
            "model": p.model,
            "model_index": p.model_index,
            "trial": p.trial,
            "status": p.status,
            "output": p.output,
            "finish_reason": p.finish_reason or None,
            "scores": p.scores,
            "latency_ms": p.latency_ms,
            "ttft_ms": p.ttft_ms,
            "prompt_tokens": p.prompt_tokens,
            "completion_tokens": p.completion_tokens,
            "cost_micros": p.cost_micros,
            "cost": _dollars(p.cost_micros),
            "request_id": p.request_id or None,
            "error": p.error or None,
        }
        for p in predictions
    ]
    return {
        "object": "list",
        "evaluation_id": evaluation.pk,
        "status": evaluation.status,
        "data": data,
        "has_more": has_more,
    }


def _evaluation_cancel(caller: Caller, evaluation_id: int) -> dict:
    try:
        evaluation_cancel(evaluation_id=evaluation_id, project_ids=[caller.project_id])
    except Evaluation.DoesNotExist:
        raise _not_found("evaluation", evaluation_id) from None
    return _evaluation_get(caller, evaluation_id)


def _leaderboard_create(caller: Caller, body: dict) -> dict:
    show_arena = body.get("show_arena", True)
    if not isinstance(show_arena, bool):
        raise errors.invalid_request("show_arena must be true or false.", param="show_arena")
    try:
        board = leaderboards.leaderboard_create(
            organization_id=caller.organization_id,
            team_id=_team_id(caller),
            team=caller.team,
            user_id=caller.user_id,
            name=body.get("name"),
            description=body.get("description", ""),
            columns=body.get("columns"),
            show_arena=show_arena,
        )
    except leaderboards.LeaderboardInvalid as exc:
        fields = [field for field, messages in exc.errors.items() if messages]
        message = "; ".join(f"{field}: {m}" for field in fields for m in exc.errors[field])
        raise errors.invalid_request(message, param=fields[0] if fields else None) from None
    return _leaderboard_data(board)


def _leaderboard_data(board) -> dict:
    table = leaderboards.leaderboard_table(board)
    return {"object": "leaderboard", **table, "created_at": _time(board.created_at)}


def _leaderboards_list(caller: Caller) -> list[dict]:
    return [
        {
            "object": "leaderboard",
            "id": board.pk,
            "name": board.name,
            "description": board.description,
            "team": board.team,
            "columns": board.columns,
            "created_at": _time(board.created_at),
        }
        for board in leaderboards.leaderboards_of_teams([_team_id(caller)])
    ]


def _leaderboard_get(caller: Caller, leaderboard_id: int) -> dict:
    board = leaderboards.leaderboard_get(leaderboard_id=leaderboard_id, team_ids=[_team_id(caller)])
    if board is None:
        raise _not_found("leaderboard", leaderboard_id)
    return _leaderboard_data(board)


# --- Views ---------------------------------------------------------------------------------------


@api_view("POST")
async def datasets_create(request: HttpRequest) -> HttpResponse:
    caller = await authenticate_request(request)
    content_type = (request.content_type or "").lower()
    if content_type.startswith("multipart/form-data"):
        _read_body(request)  # the size check
        upload = request.FILES.get("file")
        if upload is None:
            raise errors.invalid_request(
                "Send the dataset as a file field named 'file' (JSONL, JSON or CSV).",
                param="file",
            )
        try:
            parsed = dataset_rows_parse(upload.read(), upload.name or "")
        except DatasetError as exc:
            raise errors.invalid_request(str(exc), param="file") from None
        name = request.POST.get("name")
        rows, filename, source = parsed.rows, upload.name or "", DatasetVersion.Source.UPLOAD
    else:
        body = _json_body(request)
        _unknown_keys(body, {"name", "rows"})
        rows = body.get("rows")
        if not isinstance(rows, list):
            raise errors.invalid_request(
                "rows is required: a list of objects, each with 'input' or 'messages'.",
                param="rows",
            )
        name, filename, source = body.get("name"), "", DatasetVersion.Source.API
    data, created = await run_db(
        _dataset_create, caller, name=name, rows=rows, filename=filename, source=source
    )
    return json_response(data, status=201 if created else 200)


@api_view("GET")
async def datasets_list(request: HttpRequest) -> HttpResponse:
    caller = await authenticate_request(request)
    return json_response({"object": "list", "data": await run_db(_datasets_list, caller)})


@csrf_exempt
async def datasets(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        return await datasets_create(request)
    return await datasets_list(request)


@api_view("POST")
async def evaluations_create(request: HttpRequest) -> HttpResponse:
    caller = await authenticate_request(request)
    body = _json_body(request)
    _unknown_keys(body, _EVALUATION_KEYS)
    budget = _budget_micros(body.get("budget"))
    _check_scorer_entries(body.get("scorers"))
    evaluation_id = await run_db(_evaluation_create, caller, body, budget)
    await _start_evaluation(evaluation_id)
    return json_response(await run_db(_evaluation_created, evaluation_id), status=201)


@api_view("GET")
async def evaluations_list(request: HttpRequest) -> HttpResponse:
    caller = await authenticate_request(request)
    return json_response({"object": "list", "data": await run_db(_evaluations_list, caller)})


@csrf_exempt
async def evaluations(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        return await evaluations_create(request)
    return await evaluations_list(request)


@api_view("GET")
async def evaluation_detail(request: HttpRequest, evaluation_id: int) -> HttpResponse:
    caller = await authenticate_request(request)
    evaluation_id = _positive_id(evaluation_id, "evaluation")
    return json_response(await run_db(_evaluation_get, caller, evaluation_id))


def _int_query(request: HttpRequest, name: str, default: int, low: int, high: int) -> int:
    raw = request.GET.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise errors.invalid_request(
            f"{name} must be a whole number from {low} to {high:,}.", param=name
        )
    return int(raw)


@api_view("GET")
async def evaluation_results(request: HttpRequest, evaluation_id: int) -> HttpResponse:
    caller = await authenticate_request(request)
    evaluation_id = _positive_id(evaluation_id, "evaluation")
    limit = _int_query(request, "limit", RESULTS_LIMIT, 1, RESULTS_LIMIT)
    offset = _int_query(request, "offset", 0, 0, 10**9)
    return json_response(await run_db(_results, caller, evaluation_id, offset, limit))


@api_view("POST")
async def evaluation_cancel_view(request: HttpRequest, evaluation_id: int) -> HttpResponse:
    caller = await authenticate_request(request)
    evaluation_id = _positive_id(evaluation_id, "evaluation")
    return json_response(await run_db(_evaluation_cancel, caller, evaluation_id))


@api_view("POST")
async def leaderboards_create(request: HttpRequest) -> HttpResponse:
    caller = await authenticate_request(request)
    body = _json_body(request)
    _unknown_keys(body, _LEADERBOARD_KEYS)
    return json_response(await run_db(_leaderboard_create, caller, body), status=201)


@api_view("GET")
async def leaderboards_list(request: HttpRequest) -> HttpResponse:
    caller = await authenticate_request(request)
    return json_response({"object": "list", "data": await run_db(_leaderboards_list, caller)})


@csrf_exempt
async def leaderboards_view(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        return await leaderboards_create(request)
    return await leaderboards_list(request)


@api_view("GET")
async def leaderboard_detail(request: HttpRequest, leaderboard_id: int) -> HttpResponse:
    caller = await authenticate_request(request)
    leaderboard_id = _positive_id(leaderboard_id, "leaderboard")
    return json_response(await run_db(_leaderboard_get, caller, leaderboard_id))
