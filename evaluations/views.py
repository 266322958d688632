"""The datasets and evaluations pages: the project's list, a dataset upload with its preview,
the new evaluation form with its live estimate, and an evaluation's progress and results.

Thin views over evaluations.datasets / estimates / services / runs (writes) and
evaluations.selectors (reads). Access is the Traces pages' rule (projects_readable): a dataset
or an evaluation outside the user's readable projects is a 404, never a 403. Making something
(a dataset, an evaluation) needs a project the user may use: its calls are billed to it.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from evaluations import selectors
from evaluations.datasets import (
    DatasetError,
    dataset_from_calls,
    dataset_preview,
    dataset_rows_parse,
    dataset_version_create,
)
from evaluations.estimates import evaluation_estimate
from evaluations.forms import (
    MAX_MODELS,
    DatasetUploadForm,
    FromCallsForm,
    evaluation_form_read,
)
from evaluations.models import DatasetRow, DatasetVersion, Evaluation
from evaluations.scorers import SCORERS
from inference_app.gateway.tokens import estimate_prompt_tokens
from inference_app.models import CatalogModel, Project
from inference_app.projects import project_for_user, projects_readable, projects_usable
from playground.selectors import served_models

# The gateway holds this many prompt tokens for an image it does not decode (the catalog's
# vision model's bound); the estimate counts images the same way.
IMAGE_TOKENS = 2467


def _project_path(project: Project) -> str:
    return f"{project.team.name}/{project.name}"


def _readable(request) -> list[Project]:
    return list(projects_readable(user_id=request.user.pk))


def _list_project(request, readable: list[Project]) -> Project | None:
    """`?project=team/name` when the user may read it (else 404); otherwise the user's current
    project (the header's), else the first one they may read."""
    path = request.GET.get("project", "")
    if path:
        for project in readable:
            if _project_path(project) == path:
                return project
        raise Http404("No such project")
    current = project_for_user(user_id=request.user.pk, path=None)
    if current is not None and any(p.pk == current.pk for p in readable):
        return current
    return readable[0] if readable else None


def _usable_project(request) -> Project | None:
    """The project a new dataset or evaluation goes to: `project` (team/name, in the query or
    the form) when the user may use it, else their current one."""
    path = request.POST.get("project") or request.GET.get("project") or None
    project = project_for_user(user_id=request.user.pk, path=path)
    if project is None and path:
        raise Http404("No such project")
    if project is not None:
        project = projects_usable(user_id=request.user.pk).filter(pk=project.pk).first()
    return project


def _project_query(project: Project | None, readable_count: int) -> str:
    if project is None or readable_count < 2:
        return ""
    return "?" + urlencode({"project": _project_path(project)})


# --- The list -------------------------------------------------------------------------------------


@require_GET
@login_required
def evaluations_home(request):
    readable = _readable(request)
    project = _list_project(request, readable)
    evaluations = datasets = []
    if project is not None:
        evaluations = selectors.evaluations_for_project(project_id=project.pk)
        for evaluation in evaluations:
            evaluation.total = selectors.evaluation_total(evaluation)
            finished = evaluation.done_count + evaluation.error_count + evaluation.skipped_count
            evaluation.percent = round(100 * finished / evaluation.total) if evaluation.total else 0
            evaluation.models = [spec.get("model", "") for spec in evaluation.model_specs]
        datasets = selectors.datasets_for_project(project_id=project.pk)
    usable = (
        project is not None
        and projects_usable(user_id=request.user.pk).filter(pk=project.pk).exists()
    )
    return render(
        request,
        "evaluations/home.html",
        {
            "project": project,
            "project_path": _project_path(project) if project else "",
            "readable": readable,
            "evaluations": evaluations,
            "datasets": datasets,
            "can_create": usable,
            "project_query": _project_query(project, len(readable)),
        },
    )


# --- Datasets -------------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@login_required
def dataset_new(request):
    project = _usable_project(request)
    if project is None:
        raise Http404("No project to add a dataset to")
    form = DatasetUploadForm(request.POST or None, request.FILES or None)
    file_error = None
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            parsed = dataset_rows_parse(upload.read(), upload.name)
            version, created = dataset_version_create(
                organization_id=project.team.organization_id,
                project_id=project.pk,
                name=form.cleaned_data["name"],
                rows=parsed.rows,
                columns=parsed.columns,
                source=DatasetVersion.Source.UPLOAD,
                filename=upload.name,
                user_id=request.user.pk,
            )
        except DatasetError as exc:
            file_error = exc
        else:
            url = reverse("evaluations:dataset", args=[version.dataset_id])
            return redirect(f"{url}?version={version.number}&created={int(created)}")
    status = 400 if request.method == "POST" else 200
    return render(
        request,
        "evaluations/dataset_new.html",
        {
            "form": form,
            "file_error": file_error,
            "project": project,
            "project_path": _project_path(project),
        },
        status=status,
    )


@require_GET
@login_required
def dataset_detail(request, dataset_id: int):
    readable = _readable(request)
    dataset = selectors.dataset_find(dataset_id=dataset_id, project_ids=[p.pk for p in readable])
    if dataset is None:
        raise Http404("No such dataset")
    project = next(p for p in readable if p.pk == dataset.project_id)
    versions = selectors.dataset_versions(dataset=dataset)
    version = versions[0] if versions else None
    wanted = request.GET.get("version", "")
    if wanted:
        version = next((v for v in versions if str(v.number) == wanted), None)
        if version is None:
            raise Http404("No such version")
    preview = dataset_preview(version) if version is not None else None
    preview_rows = []
    if preview is not None:
        for row in preview["rows"]:
            preview_rows.append([_cell_text(row.get(column)) for column in preview["columns"]])
    return render(
        request,
        "evaluations/dataset_detail.html",
        {
            "dataset": dataset,
            "project": project,
            "project_path": _project_path(project),
            "versions": versions,
            "version": version,
            "preview": preview,
            "preview_rows": preview_rows,
            "created": request.GET.get("created"),
            "evaluations": Evaluation.objects.filter(dataset_version__dataset=dataset).order_by(
                "-created_at"
            )[:20],
        },
    )


def _cell_text(value, limit: int = 300) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@require_POST
@login_required
def dataset_new_from_calls(request):
    """From the Traces page: the selected calls (of the current project only) as a dataset."""
    from traces.models import Call

    project = _usable_project(request)
    if project is None:
        raise Http404("No project")
    form = FromCallsForm(request.POST)
    if not form.is_valid():
        return HttpResponse(
            "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items()), status=400
        )
    span_ids = form.cleaned_data["span_ids"]
    calls = list(Call.objects.filter(project_id=project.pk, span_id__in=span_ids))
    found = {call.span_id for call in calls}
    missing = [span_id for span_id in span_ids if span_id not in found]
    if missing:
        return HttpResponse(f"No such call in {_project_path(project)}: {missing[0]}", status=400)
    order = {span_id: i for i, span_id in enumerate(span_ids)}
    calls.sort(key=lambda call: order[call.span_id])
    try:
        version = dataset_from_calls(
            organization_id=project.team.organization_id,
            project_id=project.pk,
            name=form.cleaned_data["name"],
            calls=calls,
            user_id=request.user.pk,
        )
    except DatasetError as exc:
        return HttpResponse(str(exc), status=400)
    url = reverse("evaluations:dataset", args=[version.dataset_id]) + f"?version={version.number}"
    if request.htmx:
        response = HttpResponse(status=204)
        response["HX-Redirect"] = url
        return response
    return redirect(url)


# --- A new evaluation -----------------------------------------------------------------------------


def _catalog() -> list[CatalogModel]:
    return served_models()


def _prices(model_ids) -> dict[str, tuple[int, int]]:
    return {
        model_id: (inp, out)
        for model_id, inp, out in CatalogModel.objects.filter(
            model_id__in=set(model_ids)
        ).values_list("model_id", "input_price_micros", "output_price_micros")
    }


def count_prompt_tokens(body: dict) -> int:
    """The gateway's estimate of a request's prompt tokens (what it holds before a call)."""
    return estimate_prompt_tokens(body, image_tokens=IMAGE_TOKENS)


def _scorer_fields(post, models: list[CatalogModel]) -> list[dict]:
    """Each built-in scorer with its fields (names as forms.evaluation_form_read reads them)
    and their values: the posted ones, else the defaults."""
    chosen = post.getlist("scorer") if post is not None else ["exact_match"]
    fields = []
    for spec in SCORERS.values():
        args = []
        for param in spec.args:
            name = f"arg__{spec.name}__{param.name}"
            if post is not None:
                value = post.get(name, "")
            elif param.name == "model" and spec.name == "llm_judge":
                value = models[0].model_id if models else ""
            else:
                value = "" if param.default is None else param.default
            if param.type == "bool":
                checked = (value in ("on", "true", "1")) if post is not None else bool(value)
                value = checked
            args.append({"param": param, "field": name, "value": value})
        inputs = []
        for param in spec.inputs:
            name = f"map__{spec.name}__{param.name}"
            value = post.get(name, "") if post is not None else ""
            inputs.append({"param": param, "field": name, "value": value})
        fields.append(
            {
                "name": spec.name,
                "description": spec.description,
                "args": args,
                "inputs": inputs,
                "needs_model": spec.needs_model,
                "chosen": spec.name in chosen,
            }
        )
    return fields


def _model_fields(post, models: list[CatalogModel]) -> list[dict]:
    chosen = post.getlist("model") if post is not None else []
    return [
        {
            "model": model,
            "chosen": model.model_id in chosen,
            "temperature": post.get(f"temperature__{model.model_id}", "") if post else "",
            "max_tokens": post.get(f"max_tokens__{model.model_id}", "") if post else "",
        }
        for model in models
    ]


def _new_context(request, project, *, read=None, errors=None, estimate=None):
    versions = selectors.dataset_versions_for_project(project_id=project.pk)
    models = _catalog()
    post = request.POST if request.method == "POST" else None
    chosen_version = None
    if post is not None:
        chosen_version = post.get("dataset_version")
    elif request.GET.get("version"):
        chosen_version = request.GET.get("version")
    elif versions:
        chosen_version = str(versions[0].pk)
    return {
        "project": project,
        "project_path": _project_path(project),
        "versions": versions,
        "models": models,
        "model_fields": _model_fields(post, models),
        "scorers": _scorer_fields(post, models),
        "post": post,
        "chosen_version": chosen_version,
        "errors": errors or {},
        "estimate": estimate,
        "max_models": MAX_MODELS,
    }


def _estimate(read: dict) -> dict | None:
    """The estimate panel's figures, or None when the form does not describe a run yet."""
    if not read["dataset_version_id"] or not read["model_specs"]:
        return None
    judge_models = [s["args"].get("model") for s in read["scorers"] if s["scorer"] == "llm_judge"]
    if any(not m for m in judge_models):
        return None
    prices = _prices([s["model"] for s in read["model_specs"]] + judge_models)
    if any(s["model"] not in prices for s in read["model_specs"]) or any(
        m not in prices for m in judge_models
    ):
        return None
    rows = list(
        DatasetRow.objects.filter(version_id=read["dataset_version_id"])
        .order_by("index")
        .values_list("data", flat=True)
    )
    estimate = evaluation_estimate(
        rows=rows,
        model_specs=read["model_specs"],
        scorers=read["scorers"],
        trials=read["trials"],
        system_prompt=read["system_prompt"],
        prices=prices,
        count_prompt_tokens=count_prompt_tokens,
    )
    budget = read["budget_micros"]
    return {
        "calls": estimate.calls,
        "judge_calls": estimate.judge_calls,
        "predictions": estimate.calls - estimate.judge_calls,
        "estimate_micros": estimate.estimate_micros,
        "worst_case_micros": estimate.worst_case_micros,
        "per_model": estimate.per_model,
        "rows": len(rows),
        "budget_micros": budget,
        "over_budget": budget is not None and estimate.estimate_micros > budget,
        "worst_over_budget": budget is not None and estimate.worst_case_micros > budget,
    }


@require_http_methods(["GET", "POST"])
@login_required
def evaluation_new(request):
    project = _usable_project(request)
    if project is None:
        raise Http404("No project to run an evaluation in")
    if request.method == "GET":
        return render(request, "evaluations/evaluation_new.html", _new_context(request, project))
    versions = selectors.dataset_versions_for_project(project_id=project.pk)
    read = evaluation_form_read(
        request.POST,
        model_ids=[m.model_id for m in _catalog()],
        version_ids=[v.pk for v in versions],
    )
    errors = dict(read["errors"])
    evaluation = None
    if not errors:
        from evaluations.services import EvaluationInvalid, evaluation_create

        judge_models = [
            s["args"].get("model") for s in read["scorers"] if s["scorer"] == "llm_judge"
        ]
        try:
            evaluation = evaluation_create(
                organization_id=project.team.organization_id,
                team_id=project.team_id,
                team=project.team.name,
                project_id=project.pk,
                project=project.name,
                user_id=request.user.pk,
                name=read["name"],
                dataset_version_id=read["dataset_version_id"],
                scorers=read["scorers"],
                model_specs=read["model_specs"],
                trials=read["trials"],
                system_prompt=read["system_prompt"],
                budget_micros=read["budget_micros"],
                prices=_prices([s["model"] for s in read["model_specs"]] + judge_models),
                count_prompt_tokens=count_prompt_tokens,
            )
        except EvaluationInvalid as exc:
            errors = {key: list(messages) for key, messages in exc.errors.items()}
    if evaluation is None:
        estimate = None
        try:
            estimate = _estimate(read)
        except (KeyError, ValueError):
            estimate = None
        context = _new_context(request, project, read=read, errors=errors, estimate=estimate)
        return render(request, "evaluations/evaluation_new.html", context, status=400)
    _start(evaluation.pk)
    return redirect("evaluations:evaluation", evaluation_id=evaluation.pk)


def _start(evaluation_id: int) -> None:
    from evaluations.runs import evaluation_start

    evaluation_start(evaluation_id)


@require_POST
@login_required
def evaluation_estimate_panel(request):
    """The new evaluation form's estimate panel (htmx, on every change)."""
    project = _usable_project(request)
    if project is None:
        raise Http404("No project")
    versions = selectors.dataset_versions_for_project(project_id=project.pk)
    read = evaluation_form_read(
        request.POST,
        model_ids=[m.model_id for m in _catalog()],
        version_ids=[v.pk for v in versions],
    )
    problem = ""
    try:
        estimate = _estimate(read)
    except (KeyError, ValueError) as exc:
        estimate, problem = None, str(exc)
    return render(
        request,
        "evaluations/evaluation_new.html#estimate",
        {"estimate": estimate, "estimate_problem": problem, "errors": read["errors"]},
    )


# --- An evaluation --------------------------------------------------------------------------------


def _evaluation_or_404(request, evaluation_id: int) -> tuple[Evaluation, Project]:
    readable = _readable(request)
    evaluation = selectors.evaluation_find(
        evaluation_id=evaluation_id, project_ids=[p.pk for p in readable]
    )
    if evaluation is None:
        raise Http404("No such evaluation")
    project = next(p for p in readable if p.pk == evaluation.project_id)
    return evaluation, project


def _filters(request) -> set[str]:
    return {name for name in selectors.MATRIX_FILTERS if request.GET.get(name)}


def _model_index(value, count: int) -> int | None:
    try:
        index = int(value)
    except (TypeError, ValueError):
        return None
    return index if 0 <= index < count else None


def _results_context(request, evaluation: Evaluation) -> dict:
    cells = selectors.evaluation_cells(evaluation)
    summary = selectors.evaluation_summary(evaluation, cells=cells)
    filters = _filters(request)
    try:
        offset = max(int(request.GET.get("offset", "0")), 0)
    except ValueError:
        offset = 0
    matrix = selectors.evaluation_matrix(evaluation, filters, offset=offset)
    _link_calls(evaluation, matrix)
    count = len(evaluation.model_specs)
    a = _model_index(request.GET.get("a", "0"), count)
    b = _model_index(request.GET.get("b", "1"), count)
    comparison = None
    if a is not None and b is not None and a != b:
        comparison = selectors.evaluation_compare(evaluation, a, b, cells=cells)
    query = request.GET.copy()
    query.pop("offset", None)
    next_url = ""
    if matrix["next_offset"] is not None:
        query["offset"] = str(matrix["next_offset"])
        next_url = "?" + query.urlencode()
    return {
        "summary": summary,
        "matrix": matrix,
        "filters": filters,
        "compare_a": a,
        "compare_b": b,
        "comparison": comparison,
        # Rows for pending predictions exist from the start: results once one has finished.
        "has_results": any(model["items"] for model in summary),
        "next_url": next_url,
    }


def _link_calls(evaluation: Evaluation, matrix: dict) -> None:
    """Each shown cell's traced call (`span_id`), found by its gateway request id."""
    from traces.models import Call

    cells = [cell for row in matrix["rows"] for cell in row["cells"] if cell["request_id"]]
    spans = dict(
        Call.objects.filter(
            project_id=evaluation.project_id, request_id__in={c["request_id"] for c in cells}
        ).values_list("request_id", "span_id")
    )
    for cell in cells:
        cell["span_id"] = spans.get(cell["request_id"], "")


@require_GET
@login_required
@vary_on_headers("HX-Request")
def evaluation_detail(request, evaluation_id: int):
    evaluation, project = _evaluation_or_404(request, evaluation_id)
    progress = selectors.evaluation_progress(evaluation.pk)
    context = {
        "evaluation": evaluation,
        "project": project,
        "project_path": _project_path(project),
        "progress": progress,
        "eta": eta_text(progress["eta_seconds"]),
        "traces_url": reverse("traces:list")
        + "?"
        + urlencode({"project": _project_path(project), "source": "evaluation"}),
        "can_run": projects_usable(user_id=request.user.pk).filter(pk=project.pk).exists(),
        "models": selectors._model_labels(evaluation),
        **_results_context(request, evaluation),
    }
    partial = request.htmx and not request.htmx.history_restore_request
    template = "evaluations/evaluation_detail.html"
    return render(request, f"{template}#results" if partial else template, context)


@require_POST
@login_required
def evaluation_cancel_view(request, evaluation_id: int):
    from evaluations.services import evaluation_cancel

    readable = _readable(request)
    evaluation, _ = _evaluation_or_404(request, evaluation_id)
    evaluation_cancel(evaluation_id=evaluation.pk, project_ids=[p.pk for p in readable])
    return redirect("evaluations:evaluation", evaluation_id=evaluation.pk)


@require_POST
@login_required
def evaluation_resume_view(request, evaluation_id: int):
    from evaluations.runs import evaluation_resume

    evaluation, project = _evaluation_or_404(request, evaluation_id)
    if not projects_usable(user_id=request.user.pk).filter(pk=project.pk).exists():
        raise Http404("No such evaluation")
    evaluation_resume(evaluation.pk)
    return redirect("evaluations:evaluation", evaluation_id=evaluation.pk)


def eta_text(seconds: int | None) -> str:
    """As the page's script writes it: "40 s", "3 min 5 s", "2 h 10 min"; "—" for none."""
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min {seconds % 60} s"
    return f"{minutes // 60} h {minutes % 60} min"
